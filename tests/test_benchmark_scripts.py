"""The analysis scripts under benchmarks/ still run against the package: the plan's steps per threshold and
the fits' coverage on synthetic runs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamcap.orchestrator.spec import SweepSpec
from tests.kernels.test_benchmarks import GPU_SCRIPT, load

BENCHMARKS = GPU_SCRIPT.parent


def test_plan_script_prices_adam_steps_per_threshold():
    plan = load(BENCHMARKS / "plan.py")
    spec = SweepSpec(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=2, device="cpu")
    cell = next(iter(spec.cells()))
    steps = plan.expected_steps(spec, cell)
    assert 0 < steps <= 20 * spec.solver_settings.max_steps  # some probes, each within the step budget


def test_fit_coverage_script_recovers_noise_free_truths_and_covers_noisy_ones():
    coverage = load(BENCHMARKS / "fit_coverage.py")
    from lamcap.analysis.scaling import fit_scaling

    design = pd.DataFrame({"d": [8, 16, 32, 64], "n_seeds": [4, 4, 4, 4], "alpha_star_std": [0.0] * 4})
    runs = coverage.synthetic_run(design, "op", 1.0, 0.45, 1.3, reps=2, rng=np.random.default_rng(0))
    fit = fit_scaling(runs, "theory", n_boot=20).sel(problem="op", rho=1.0)
    error, _, width = coverage.coverage(fit, 0.45)
    assert abs(error) < 1e-9 and width < 1e-9  # the theory-shaped law, recovered exactly

    design["alpha_star_std"] = 0.02
    runs = coverage.synthetic_run(design, "op", 1.0, 0.45, 1.3, reps=40, rng=np.random.default_rng(1))
    error, share, width = coverage.coverage(fit_scaling(runs, "theory", n_boot=100).sel(problem="op", rho=1.0), 0.45)
    assert abs(error) < 0.03 and share >= 0.8 and 0 < width < 0.5
