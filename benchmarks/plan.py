"""How good was `lamcap plan`? Its predictions beside what a finished sweep's store measured.

    .venv/bin/python benchmarks/plan.py STORE [--plan PLAN.json]

Per Adam cell: the expected optimiser steps per threshold (the learner simulation and the SAT
steps model of lamcap.orchestrator.planning.cost_model: no timing involved, so any machine can check it)
against the store's search probes. With --plan (the output of `lamcap plan ... --json`, saved
before the sweep ran), per cell and in total: the predicted device-seconds against the measured
sums of the probes' wall_seconds and cpu_seconds (the CPU clock where the machine was shared).
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch


def expected_steps(spec, cell) -> float:
    """The plan's mean Adam steps per threshold of a cell (timings play no part: any model will do)."""
    from lamcap.orchestrator.learners.threshold import theory_guess
    from lamcap.orchestrator.planning.cost_model import ProbeContext
    from lamcap.orchestrator.planning.plan import SPREAD, search_trace, simulated_thresholds
    from lamcap.orchestrator.planning.stated import stated_gpu_model

    ctx = ProbeContext.of(spec, stated_gpu_model())
    guess = theory_guess(cell)
    return statistics.fmean(sum(ctx.steps(cell, p, t) for p, _ in search_trace(cell, spec, guess, t))
                            for t in simulated_thresholds(guess, cell.d, SPREAD[cell.theory_kind]))


def steps_table(store, spec) -> None:
    probes = store.probes
    search = probes.isel(probe=((probes.solver == "adam") & (probes.purpose == "search")).values.nonzero()[0])
    print(f"{'problem':7} {'rho':>5} {'d':>4}  {'plan steps/threshold':>20}  {'measured (mean of seeds)':>24}  ratio")
    for cell in (c for c in spec.cells() if c.solver == "adam"):
        mask = ((search.problem == cell.problem) & (search.rho == cell.rho) & (search.d == cell.d)).values
        if not mask.any():
            continue
        per_seed = {}
        for seed, steps in zip(search.seed.values[mask], search.steps.values[mask]):
            per_seed[int(seed)] = per_seed.get(int(seed), 0) + int(steps)
        plan, measured = expected_steps(spec, cell), statistics.fmean(per_seed.values())
        print(f"{cell.problem:7} {cell.rho:5.2f} {cell.d:4d}  {plan:20.0f}  {measured:24.0f}  {plan / measured:5.2f}")


def seconds_table(store, plan: dict) -> None:
    probes = store.probes
    clocks = [c for c in ("wall_seconds", "cpu_seconds") if c in probes]
    print(f"\nplan: {plan['source']}\n{'problem':7} {'solver':7} {'rho':>5} {'d':>4}  {'plan s':>9}  "
          + "  ".join(f"{c:>12}" for c in clocks))
    totals = {c: 0.0 for c in clocks}
    for cell in plan["cells"]:
        mask = ((probes.problem == cell["problem"]) & (probes.solver == cell["solver"]) & (probes.rho == cell["rho"])
                & (probes.d == cell["d"])).values
        measured = {c: float(probes[c].values[mask].sum()) for c in clocks}
        for c in clocks:
            totals[c] += measured[c]
        print(f"{cell['problem']:7} {cell['solver']:7} {cell['rho']:5.2f} {cell['d']:4d}  {cell['seconds']:9.0f}  "
              + "  ".join(f"{measured[c]:12.0f}" for c in clocks))
    print(f"total: plan {plan['device_seconds']:.0f} device-seconds; measured "
          + ", ".join(f"{c} {totals[c]:.0f} (plan / measured {plan['device_seconds'] / totals[c]:.2f})"
                      for c in clocks if totals[c] > 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument("--plan", default=None, help="`lamcap plan ... --json` output saved before the sweep")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from lamcap.analysis.load import open_store
    from lamcap.orchestrator.spec import SweepSpec

    store = open_store(args.store)
    spec = SweepSpec.from_dict(json.loads(store.attrs["spec"]))
    steps_table(store, spec)
    if args.plan:
        with open(args.plan) as fh:
            seconds_table(store, json.load(fh))


if __name__ == "__main__":
    main()
