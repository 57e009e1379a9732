"""A stated proxy for the device-seconds of a cell, until the cost model of `lamcap plan` is wired in.

    seconds = seeds x PROBES_PER_SEED x steps x 3 p*^2 d / WORK_PER_SECOND[problem]

p* = lamcap.predictions.predicted_critical_p(d, rho_eff, kind): the probes of a threshold search sit
around it. One optimiser step costs about 3 p^2 d multiply-adds in both problems (scores, their gradient,
the softmax-weighted sum): OP multiplies a p x d matrix by its transpose, DP streams its p x p x d private
competitors, the same count but at memory speed, hence its lower rate. (The issue suggested an extra
factor p for DP; the fused loss does p^2 d work per step for both, so a constant rate ratio stands in.)
Hebbian is one closed-form step plus verification. The rates are order-of-magnitude guesses for one
GPU. Within one (problem, solver, rho) series only the growth with d matters to the dimension learner's
choices (a constant factor only rescales its budget), and that growth, p*^2 d ~ d^5 / ln^2 d, is the
part this proxy is sure of.
"""
from __future__ import annotations

PROBES_PER_SEED = 10  # bisection on nested disorder averages 8.6 probes per seed (benchmarks/sweep.py)
STEPS = {"adam": 2000, "hebbian": 1, "lp": 2000}  # adam's default max_steps; lp priced like adam
WORK_PER_SECOND = {"op": 2e12, "dp": 2e11}  # multiply-adds per device-second (guesses, see above)


def proxy_cost(problem: str, solver: str, rho: float, d: int, seeds: int) -> float:
    """Device-seconds of `seeds` threshold searches of the cell (problem, solver, rho, d) (the proxy above)."""
    from lamcap.orchestrator.spec.adaptive_rules import rank_of
    from lamcap.predictions import predicted_critical_p

    kind = "hebbian" if solver == "hebbian" else "optimal"
    p = predicted_critical_p(d, rank_of(rho, d) / d, kind)
    return seeds * PROBES_PER_SEED * STEPS[solver] * 3.0 * p * p * d / WORK_PER_SECOND[problem]
