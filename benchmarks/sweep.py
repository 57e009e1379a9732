"""The sweep orchestrator's two costs: probes per threshold, and how busy it keeps its actors.

(a) Probes per (cell, seed): the adaptive bisection (lamcap.orchestrator.learners.threshold.ThresholdLearner, asked
    one point at a time, and 4 at a time as the scheduler does with idle actors) against the
    paper's method, a uniform grid of 20 loads per cell; and what a relative resolution of
    RESOLUTION (SearchSettings.resolution: stop once p_hi - p_lo <= max(1, r p_lo)) saves. The oracle is a
    monotone fake: SAT iff p <= p_true(seed), with p_true = g * bias * exp(sigma z),
    g = lamcap.predictions.predicted_critical_p
    (the learner's own first guess), z ~ N(0, 1) per seed, sigma = 0.15 sqrt(8 / d) (about the
    seed-to-seed spread of real sweeps at small d, shrinking with d). bias = 1: theory is right on
    average; bias = 0.8: theory 25% too high (short Adam budgets land there). The grid spans the
    theory's load +-50% in alpha; exact integer p* from a grid needs every integer of that window.
(b) Actor utilisation, busy time / (actors x wall time) (SweepReport.utilisation), of the real
    Scheduler on an embedded Ray with 2 workers and a runner that only sleeps (50 ms, 200 ms), so
    that the number measures the dispatch loop, not the kernels; default SchedulerSettings.
    Target >= 90%.

Run: .venv/bin/python benchmarks/sweep.py [--quick] [--probes-only]   (under a minute on 2 CPU cores)
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from lamcap.orchestrator.learners.threshold import ThresholdLearner
from lamcap.orchestrator.runtime.probe import probe_labels
from lamcap.orchestrator.spec import Cell, Probe, SearchSettings, SweepSpec
from lamcap.predictions.units import alpha_to_p

DS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
KINDS = (("adam", 1.0), ("adam", 0.5), ("hebbian", 1.0))  # hebbian's theory does not depend on rho
SEEDS = 32
GRID_LOADS = 20
GRID_SPAN = 0.5  # the grid covers alpha_theory * [1 - span, 1 + span]
RESOLUTION = 0.01
TARGET_UTILISATION = 0.90


# ---- (a) probes per threshold ----------------------------------------------------------------
def true_p(guess: float, d: int, bias: float, rng: random.Random) -> int:
    """One seed's critical p: around bias * guess, relative spread 0.15 sqrt(8 / d)."""
    sigma = 0.15 * math.sqrt(8 / d)
    return max(2, round(bias * guess * math.exp(sigma * rng.gauss(0.0, 1.0))))


def bisection_probes(cell: Cell, guess: float, p_star: int, width: int, resolution: float = 0.0) -> int:
    """Probes the learner spends on one seed, `width` points asked at a time (each round told at once)."""
    learner = ThresholdLearner(cell, 0, guess, None, resolution)
    while not learner.done:
        points = learner.ask(width)
        assert points, "a learner with a monotone oracle always has a next point"
        for p in points:
            learner.tell(p, p <= p_star)
    result = learner.result()
    assert result.p_lo <= p_star < result.p_hi and (resolution > 0 or result.p_star == p_star)
    return result.n_probes


def grid_window(guess: float, d: int) -> tuple[int, int]:
    """The integer p range of the uniform grid: the theory's load +-GRID_SPAN in alpha."""
    alpha = guess * math.log(guess) / d**2
    lo = max(2, math.ceil(alpha_to_p(alpha * (1 - GRID_SPAN), d)))
    return lo, math.floor(alpha_to_p(alpha * (1 + GRID_SPAN), d))


def probes_table(bias: float, seed: int = 0) -> list[dict]:
    from lamcap.orchestrator.learners.threshold import theory_guess

    rng = random.Random(seed)
    rows = []
    for d in DS:
        for solver, rho in KINDS:
            cell = Cell("op", solver, rho, d)
            guess = theory_guess(cell)
            truths = [true_p(guess, d, bias, rng) for _ in range(SEEDS)]
            lo, hi = grid_window(guess, d)
            rows.append({
                "d": d, "kind": f"{solver} rho={rho:g}", "guess": guess,
                "bisect1": statistics.mean(bisection_probes(cell, guess, p, 1) for p in truths),
                "bisect4": statistics.mean(bisection_probes(cell, guess, p, 4) for p in truths),
                "coarse1": statistics.mean(bisection_probes(cell, guess, p, 1, RESOLUTION) for p in truths),
                "coarse4": statistics.mean(bisection_probes(cell, guess, p, 4, RESOLUTION) for p in truths),
                "grid_exact": hi - lo + 1,
                "grid_loads": min(GRID_LOADS, hi - lo + 1),
                "grid_step": max(1.0, (hi - lo) / (GRID_LOADS - 1)),
                "outside": sum(not lo <= p < hi for p in truths) / len(truths),
            })
    return rows


def print_probes(rows: list[dict], bias: float) -> None:
    print(f"\n(a) probes per (cell, seed), {SEEDS} seeds per cell, p_true around {bias:g} x theory")
    print("  bisect n=k: mean probes the learner spends for the exact p*, asking k points at a time\n"
          "  grid exact: loads a uniform grid needs for the same resolution (every integer p of its window)\n"
          "  grid 20, dp: the paper's grid, its loads per seed (fewer if the window holds fewer integers)"
          " and their spacing in p\n"
          "  outside: seeds whose p* lies outside the grid window (bisection expands its bracket, a grid"
          " cannot)\n"
          f"  r={RESOLUTION:g} n=k: the same learner stopping at p_hi - p_lo <= max(1, {RESOLUTION:g} p_lo)")
    header = (f"{'d':>4} {'cell':16} {'theory p':>9} {'bisect n=1':>10} {'bisect n=4':>10} "
              f"{f'r={RESOLUTION:g} n=1':>10} {f'r={RESOLUTION:g} n=4':>10} "
              f"{'grid exact':>10} {'grid 20':>7} {'dp':>6} {'outside':>7}")
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['d']:>4} {r['kind']:16} {r['guess']:9.1f} {r['bisect1']:10.1f} {r['bisect4']:10.1f} "
              f"{r['coarse1']:10.1f} {r['coarse4']:10.1f} "
              f"{r['grid_exact']:10d} {r['grid_loads']:7d} {r['grid_step']:6.1f} {r['outside']:7.0%}")
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("bisect1", "bisect4", "grid_exact", "grid_loads")}
    print(f"mean over cells: bisection {mean['bisect1']:.1f} probes (n=1), {mean['bisect4']:.1f} (n=4), exact p*;"
          f" uniform grid: {mean['grid_exact']:.0f} loads for the same resolution, or {mean['grid_loads']:.1f}"
          f" loads for a p* known to one grid step (alpha step {2 * GRID_SPAN / (GRID_LOADS - 1):.1%} of the"
          f" theory's load)")
    for d in (64, 128):
        at = [r for r in rows if r["d"] == d]
        saved = ", ".join(f"{r['kind']} {r['bisect1'] - r['coarse1']:.1f} of {r['bisect1']:.1f} (n=4: "
                          f"{r['bisect4'] - r['coarse4']:.1f} of {r['bisect4']:.1f})" for r in at)
        print(f"resolution {RESOLUTION:g} saves per threshold at d = {d}: {saved}")


# ---- (b) utilisation of the dispatch loop ----------------------------------------------------
def oracle_p(problem: str, d: int, seed: int) -> int:
    """A made-up monotone oracle: thresholds spread over [6, 42]."""
    return 6 + (3 * d + 7 * seed + (11 if problem == "dp" else 0)) % 37


def sleeping_runner(seconds: float, probe: Probe, settings, device: str) -> dict:
    """A probe that takes `seconds` and returns the oracle's verdict (records as run_probe builds them)."""
    time.sleep(seconds)
    sat = probe.p <= oracle_p(probe.cell.problem, probe.cell.d, probe.seed)
    return {**probe_labels(probe), "sat": sat, "status": "closed_form", "accuracy": 1.0 if sat else 0.9,
            "n_violations": 0 if sat else 1, "min_margin": 0.1, "final_loss": 0.0, "steps": 0,
            "wall_seconds": seconds, "peak_bytes": 0, "device": device, "target_mean": 0.0, "target_var": 1.0,
            "offtarget_mean": 0.0, "offtarget_var": 1.0, "target_hist": [], "offtarget_hist": [],
            "singular_values": [1.0] * probe.cell.d, "error": ""}


def timed(obj, name: str, totals: dict) -> None:
    """Wrap obj.name so that its calls and seconds add up in totals[name]."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            calls, seconds = totals.get(name, (0, 0.0))
            totals[name] = (calls + 1, seconds + time.perf_counter() - start)

    setattr(obj, name, wrapper)


def utilisation_run(pool, seconds: float, seeds: int, workdir: Path, ds=(8, 12, 16, 24)) -> dict:
    """One sweep of sleeping probes through the real Scheduler (default settings); its numbers."""
    import functools

    from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
    from lamcap.store.writer import StoreWriter

    spec = SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=ds, seeds=seeds,
                     device="cpu", search=SearchSettings())
    pool.set_runner(functools.partial(sleeping_runner, seconds))
    store = StoreWriter.open_or_create(workdir / f"util-{seconds}.zarr", spec)
    sched = Scheduler(spec, store, pool, SchedulerSettings(progress=False), guess=lambda cell: 20.0)
    totals: dict = {}
    for name in ("flush", "_fill", "_collect"):
        timed(sched, name, totals)
    report = sched.run()
    return {"seconds": seconds, "probes": report.probes_run, "wall": report.wall_seconds,
            "probes_per_s": report.probes_run / report.wall_seconds,
            "busy": report.busy_seconds, "util": report.utilisation, "totals": totals,
            "per_actor": dict(report.per_actor)}


def print_utilisation(rows: list[dict]) -> None:
    print(f"\n(b) actor utilisation, embedded Ray, {len(rows[0]['per_actor'])} actors, sleeping probes, default "
          "SchedulerSettings")
    print("  idle ms: actor time outside probes, per probe (dispatch round trip, the sweep's tail)\n"
          "  flush/fill/collect ms: dispatch-loop time per call (flush: blocked handing a batch to the store's\n"
          "  writer thread; the final flush waits for the disk)")
    header = (f"{'probe':>6} {'probes':>6} {'wall s':>7} {'busy s':>7} {'util':>6} {'rate':>9} {'idle ms':>7} "
              f"{'flushes':>7} "
              f"{'flush ms':>8} {'fill ms':>7} {'collect ms':>10}  per actor")
    print(header + "\n" + "-" * len(header))
    for r in rows:
        t = r["totals"]
        per_call = {k: 1000 * s / max(1, n) for k, (n, s) in t.items()}
        idle = 1000 * (len(r["per_actor"]) * r["wall"] - r["busy"]) / r["probes"]
        print(f"{r['seconds'] * 1000:4.0f}ms {r['probes']:6d} {r['wall']:7.2f} {r['busy']:7.2f} {r['util']:6.1%} "
              f"{r['probes_per_s']:7.0f}/s "
              f"{idle:7.1f} {t['flush'][0]:7d} {per_call['flush']:8.1f} {per_call['_fill']:7.2f} "
              f"{per_call['_collect']:10.2f}  {r['per_actor']}")
    worst = min(r["util"] for r in rows)
    print(f"lowest utilisation {worst:.1%}: target >= {TARGET_UTILISATION:.0%} "
          f"{'met' if worst >= TARGET_UTILISATION else 'NOT met'}")


def measure_utilisation(quick: bool, actors: int = 2, probe_ms: float | None = None) -> list[dict]:
    """Sleeping probes on `actors` actors (each reserves no CPU when there are more actors than cores: they only
    sleep); enough searches that every actor has one (seeds grow with the actors)."""
    from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool
    from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray

    start_ray(None, num_cpus=max(2, actors))
    pool = WorkerPool(WorkerPlan(count=actors, num_gpus=0, num_cpus=1, device="cpu"))
    try:
        pool.wait_ready(timeout=600.0)
        scale = max(1, actors // 2)
        runs = ((0.05, 2 if quick else 6), (0.2, 1 if quick else 2)) if probe_ms is None else \
            ((probe_ms / 1000, (2 if quick else 6) * scale),)
        with tempfile.TemporaryDirectory() as tmp:
            return [utilisation_run(pool, seconds, seeds, Path(tmp)) for seconds, seeds in runs]
    finally:
        pool.shutdown()
        stop_ray()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer probes in (b)")
    parser.add_argument("--probes-only", action="store_true", help="(a) only: no Ray")
    parser.add_argument("--utilisation-only", action="store_true", help="(b) only")
    parser.add_argument("--actors", type=int, default=2, help="actors of (b) (default 2)")
    parser.add_argument("--probe-ms", type=float, default=None, help="one probe length for (b) (default: 50 and 200)")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.utilisation_only:
        for bias in (1.0, 0.8):
            print_probes(probes_table(bias), bias)
    if not args.probes_only:
        print_utilisation(measure_utilisation(args.quick, args.actors, args.probe_ms))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
