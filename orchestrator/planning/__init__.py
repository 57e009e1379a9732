"""What a sweep costs before it runs: the per-probe cost model (calibrated or stated), the simulated searches
of `lamcap plan`, and the stated-model cost the adaptive dimension learner plans with."""
