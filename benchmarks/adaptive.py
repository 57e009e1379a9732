"""Adaptive rank and dimension axes (lamcap.orchestrator.learners.decisions) against uniform grids, on a fake runner.

The fake runner: one seed's threshold is p = p_RS(d; rho_eff) exp(sigma_p(d) z), z ~ N(0, 1), rounded to an
integer, alpha* = p ln p / d^2, where p_RS is the finite-size theory's critical p (lamcap.predictions,
docs/THEORY.md 3.2). Seed-spread models sigma_p(d), the relative spread of p*:
    none   0 (and p not rounded): pure interpolation, the best case for any sampler
    sqrt   0.15 sqrt(8 / d)   (benchmarks/sweep.py's model: the spread of real sweeps at small d)
    1/d    0.15 (8 / d)       (the same at d = 8, shrinking like the width of a sharp threshold in d^2 variables)

(a) Rank axis, (problem, solver) = (op, adam), rho in [0.1, 1], 8 seeds per cell. The error of the linear
    interpolant of the per-cell median alpha* against the true curve alpha_RS(d; r / d), over every rank r
    of the range (max and root-mean-square), for a uniform grid of N cells and for the RankLearner after N
    cells; "needs" is the fewest adaptive cells whose error is at most the uniform grid's at N (mean error
    over the replicas). Goal: needs <= N / 2. "bound" is the best ratio any placement can reach for the max
    error of a piecewise-linear interpolant of that curve, asymptotically: the optimal spacing goes like
    |f''|^(-1/2), so N_optimal / N_uniform = mean(|f''|^(1/2)) / max(|f''|)^(1/2) over rho. A synthetic
    curve with one sharp bend ("knee", at rho = 0.45, noise-free) shows the learner where placement can pay.
(b) Dimension axis, (op, adam, rho = 1), ladder 8 .. 128, cost = proxy_cost (proxy_cost).
    The width of the alpha_inf interval of the fit alpha_inf + a / ln d (unweighted, per-d medians), as the
    sampling truth of each design: 2 x 1.96 x the standard deviation of the fitted alpha_inf over 2000
    simulated repetitions of that design. Uniform: k seeds at every rung. Adaptive: the DimensionLearner's
    design after each round, against the device-seconds it has committed. Goal: the adaptive learner reaches
    the uniform ladder's width for at most half its device-seconds.

Run: .venv/bin/python benchmarks/adaptive.py [--quick]   (about a minute on 2 CPU cores; --quick: fewer replicas)
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from proxy_cost import proxy_cost

from lamcap import predictions as theory
from lamcap.orchestrator.learners.dimension import DimensionLearner
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.spec.adaptive_rules import DimensionRule, RhoRule

SPREADS = {"none": lambda d: 0.0, "sqrt": lambda d: 0.15 * math.sqrt(8 / d), "1/d": lambda d: 0.15 * 8 / d}
RANK_DS = (64, 128)
RANK_SEEDS = 8
RANK_MAX_CELLS = 24
LADDER = (8, 12, 16, 24, 32, 48, 64, 96, 128)
UNIFORM_SEEDS = (2, 3, 4, 6, 8, 12, 16, 24, 32)
MC_REPS = 2000


def seed_alphas(p_rs: float, d: int, spread: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n seeds' alpha* around the theory's critical p (see the module docstring)."""
    p = p_rs * np.exp(SPREADS[spread](d) * rng.standard_normal(n))
    if spread != "none":
        p = np.maximum(2, np.round(p))
    return p * np.log(p) / d**2


# ---- (a) rank axis ---------------------------------------------------------------------------------
def true_curve(d: int, rule: RhoRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rank of the rule at d, the theory's critical p there, and alpha_RS(d; r / d)."""
    lo, hi = rule.rank_range(d)
    ranks = np.arange(lo, hi + 1)
    pred = [theory.finite_size_prediction(d, r / d) for r in ranks]
    return ranks, np.array([p for p, _ in pred]), np.array([a for _, a in pred])


def interpolation_error(cells: dict[int, float], ranks: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(max, rms) of |linear interpolant of the cells' medians - truth| over every rank."""
    known = sorted(cells)
    err = np.abs(np.interp(ranks, known, [cells[r] for r in known]) - truth)
    return float(err.max()), float(np.sqrt(np.mean(err**2)))


def knee(rho: np.ndarray) -> np.ndarray:
    """A synthetic capacity curve: linear rise, a sharp bend at rho = 0.45, then flat (a softened min)."""
    return 0.2 + 0.6 * (0.45 - 0.03 * np.log1p(np.exp((0.45 - rho) / 0.03)))


def placement_bound(ranks: np.ndarray, truth: np.ndarray) -> float:
    """N_optimal / N_uniform for the max error of linear interpolation, asymptotically (module docstring)."""
    x = ranks / ranks[-1]
    root = np.sqrt(np.abs(np.gradient(np.gradient(truth, x), x)))
    return float(root.mean() / root.max())


def rank_runs(d: int, spread: str, reps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean (max, rms) error against the number of cells, uniform and adaptive: arrays (N, 2) from N = 3;
    and the placement bound of the curve. spread 'knee': the synthetic curve, noise-free."""
    rule = RhoRule(0.1, 1.0, RANK_MAX_CELLS)
    ranks, p_rs, truth = true_curve(d, rule)
    if spread == "knee":
        truth = knee(ranks / d)
    cells_needed = range(3, RANK_MAX_CELLS + 1)
    uniform = np.zeros((len(cells_needed), 2))
    adaptive = np.zeros((len(cells_needed), 2))
    for rep in range(reps):
        rng = np.random.default_rng([rep, d])
        alphas = {int(r): (np.full(RANK_SEEDS, t) if spread == "knee" else seed_alphas(p, d, spread, RANK_SEEDS, rng))
                  for r, p, t in zip(ranks, p_rs, truth)}
        medians = {r: float(np.median(v)) for r, v in alphas.items()}
        for i, n in enumerate(cells_needed):
            grid = sorted({int(round(x)) for x in np.linspace(ranks[0], ranks[-1], n)})
            uniform[i] += interpolation_error({r: medians[r] for r in grid}, ranks, truth)
        learner = RankLearner(rule, d)
        trajectory = {}
        while rhos := learner.ask():
            for rho in rhos:  # the same seeds' thresholds as the uniform grid sees at that rank
                learner.tell(rho, alphas[learner.rank_of(rho)])
            told = {r: float(np.median(v)) for r, v in learner.told.items()}
            trajectory[len(told)] = interpolation_error(told, ranks, truth)
        for i, n in enumerate(cells_needed):
            adaptive[i] += trajectory[max(k for k in trajectory if k <= n)]
    return uniform / reps, adaptive / reps, placement_bound(ranks, truth)


def needs(adaptive: np.ndarray, target: float) -> int | None:
    """The fewest cells (from 3) whose adaptive error is at most target."""
    hits = np.flatnonzero(adaptive <= target * (1 + 1e-12))
    return int(hits[0]) + 3 if hits.size else None


def print_rank_axis(reps: int) -> None:
    print(f"\n(a) rank axis: interpolation error of median alpha*(rho), rho in [0.1, 1], {RANK_SEEDS} seeds per cell")
    for spread in ("knee", *SPREADS):
        for d in (RANK_DS[-1:] if spread == "knee" else RANK_DS):
            n_reps = reps if spread in ("sqrt", "1/d") else 1
            uniform, adaptive, bound = rank_runs(d, spread, n_reps)
            curve = "synthetic knee, noise-free" if spread == "knee" else f"theory, seed spread '{spread}'"
            print(f"\n  d = {d}, {curve}, mean over {n_reps} replica(s); error x 1000")
            print(f"  {'N':>3} {'uniform max':>11} {'adaptive max':>12} {'needs':>5} {'uniform rms':>11} "
                  f"{'adaptive rms':>12} {'needs':>5}")
            ratios, errors = {0: [], 1: []}, []
            for i, n in enumerate(range(3, RANK_MAX_CELLS + 1)):
                row = [needs(adaptive[:, j], uniform[i, j]) for j in (0, 1)]
                for j in (0, 1):
                    if n >= 6:
                        ratios[j].append(row[j] / n if row[j] is not None else math.inf)
                if n >= 6:
                    errors.append(adaptive[i, 0] / uniform[i, 0])
                if n in (4, 6, 8, 10, 12, 16, 20, 24):
                    print(f"  {n:3d} {1000 * uniform[i, 0]:11.2f} {1000 * adaptive[i, 0]:12.2f} {row[0] or '>24':>5} "
                          f"{1000 * uniform[i, 1]:11.2f} {1000 * adaptive[i, 1]:12.2f} {row[1] or '>24':>5}")
            print(f"  adaptive cells / uniform cells for the same error, median over N = 6 .. {RANK_MAX_CELLS}:"
                  f" max error {statistics.median(ratios[0]):.2f} (bound {bound:.2f}), rms"
                  f" {statistics.median(ratios[1]):.2f} (goal <= 0.5); adaptive / uniform max error at equal N:"
                  f" {statistics.median(errors):.2f}")
            if uniform[-1, 0] >= uniform[5, 0]:  # N = 24 no better than N = 8
                print("  noise-dominated: the uniform grid's error does not fall from N = 8 to 24 (the medians' seed"
                      " noise exceeds the interpolation error), so 'needs' measures noise, not placement")


# ---- (b) dimension axis ----------------------------------------------------------------------------
def mc_width(counts: dict[int, int], p_rs: dict[int, float], spread: str, rng: np.random.Generator) -> float:
    """Sampling width (2 x 1.96 sd) of the fitted alpha_inf of a design, over MC_REPS simulated repetitions."""
    rungs = [d for d in LADDER if counts.get(d, 0) > 0]
    x = 1.0 / np.log(np.array(rungs, dtype=float))
    medians = np.stack([np.median(seed_alphas(p_rs[d], d, spread, MC_REPS * counts[d], rng)
                                  .reshape(MC_REPS, counts[d]), axis=1) for d in rungs])
    intercepts = np.polynomial.polynomial.polyfit(x, medians, 1)[0]
    return 2 * 1.959964 * float(intercepts.std())


def adaptive_trajectory(spread: str, p_rs: dict[int, float], seed: int) -> list[tuple[float, dict, float]]:
    """(committed device-seconds, seeds per rung, the learner's own width) after each round of a long run."""
    rule = DimensionRule(LADDER, budget_device_hours=100, target=1e-4, seeds_per_round=4, max_seeds=64)
    learner = DimensionLearner(rule, proxy_cost, "op", "adam", 1.0, initial_seeds=3)
    rng = np.random.default_rng([seed, 99])
    out = []
    while batches := learner.ask():
        for batch in batches:
            for s, alpha in zip(batch.seeds, seed_alphas(p_rs[batch.d], batch.d, spread, len(batch.seeds), rng)):
                learner.tell((batch.d, s), float(alpha))
        counts = {d: len(learner.values(d)) for d in LADDER}
        out.append((learner.committed_seconds, counts, learner.width()))
    return out


def print_dimension_axis(reps: int) -> None:
    print(f"\n(b) dimension axis: alpha_inf interval width vs device-seconds (proxy_cost), op adam rho = 1,"
          f" ladder {list(LADDER)}")
    p_rs = {d: theory.finite_size_prediction(d, 1.0)[0] for d in LADDER}
    for spread in ("sqrt", "1/d"):
        rng = np.random.default_rng(7)
        runs = [adaptive_trajectory(spread, p_rs, seed) for seed in range(reps)]
        print(f"\n  seed spread '{spread}', adaptive: median over {reps} runs; widths are MC truths of each design")
        print(f"  {'k':>3} {'uniform s':>10} {'uniform width':>13} {'adaptive s':>10} {'ratio':>6} "
              f"{'adaptive design at that point (seeds per d)':>44}")
        ratios = []
        for k in UNIFORM_SEEDS:
            cost = sum(proxy_cost("op", "adam", 1.0, d, k) for d in LADDER)
            width = mc_width({d: k for d in LADDER}, p_rs, spread, rng)
            reached = [_first_reaching(run, width, p_rs, spread, rng) for run in runs]
            seconds = statistics.median(r[0] for r in reached)
            design = min(reached, key=lambda r: abs(r[0] - seconds))[1]
            ratios.append(seconds / cost)
            print(f"  {k:3d} {cost:10.1f} {width:13.4f} {seconds:10.1f} {seconds / cost:6.2f}   "
                  f"{' '.join(str(design.get(d, 0)) for d in LADDER)}")
        print(f"  adaptive device-seconds / uniform device-seconds for the same width: median "
              f"{statistics.median(ratios):.2f}, worst {max(ratios):.2f} (goal <= 0.5)")


def _first_reaching(run, width: float, p_rs, spread: str, rng) -> tuple[float, dict]:
    """The first round whose design's true width is at most `width` (bisection over the run's rounds)."""
    lo, hi = 0, len(run) - 1
    if mc_width(run[hi][1], p_rs, spread, rng) > width:
        return math.inf, run[hi][1]
    while lo < hi:  # widths shrink along a run, up to MC noise
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if mc_width(run[mid][1], p_rs, spread, rng) > width else (lo, mid)
    return run[lo][0], run[lo][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer noise replicas")
    args = parser.parse_args()
    start = time.perf_counter()
    print_rank_axis(reps=4 if args.quick else 8)
    print_dimension_axis(reps=2 if args.quick else 5)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
