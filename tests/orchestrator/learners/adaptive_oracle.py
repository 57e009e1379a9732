"""A fake probe runner whose thresholds depend on rank and d like the capacity does, plus seed noise.

SAT iff p <= p_true(cell, seed): every threshold is known exactly. alpha(rho, d) rises steeply at small rho and
flattens towards rho = 1 (as kappa(rho) / 2 does) and decays like 1 / ln d; p_true is the p of that load,
moved by a seed's noise. Module-level functions: Ray workers import this module by name. Run as a script,
it is `lamcap sweep` with this runner (the SIGKILL test's driver):
    python -m tests.orchestrator.learners.adaptive_oracle SPEC.toml STORE FLUSH_SECONDS
"""
from __future__ import annotations

import math
import random
import sys
import time

from lamcap.orchestrator.runtime.probe import probe_labels
from lamcap.orchestrator.spec import Cell, Probe
from lamcap.predictions.units import alpha_to_p

SLEEP_S = 0.02  # slow_runner's time per probe: the killed driver must still be running a while


def alpha_true(rho: float, d: int) -> float:
    """A smooth capacity curve: 0.5 at rho = 1, steep at small rho, + 0.3 / ln d."""
    return 0.5 * (1.0 - math.exp(-4.0 * rho)) / (1.0 - math.exp(-4.0)) + 0.3 / math.log(d)


def guess(cell: Cell) -> float:
    """The scheduler's first guess of p*: the noise-free threshold."""
    return alpha_to_p(alpha_true(cell.rho_eff, cell.d), cell.d)


def p_true(cell: Cell, seed: int) -> int:
    """One seed's threshold: the noise-free one moved by 8% log-normal noise, seeded by (problem, d, rank, seed)."""
    z = random.Random(f"{cell.problem}-{cell.d}-{cell.rank}-{seed}").gauss(0.0, 1.0)
    return max(2, round(guess(cell) * math.exp(0.08 * z)))


def runner(probe: Probe, settings, device: str) -> dict:
    sat = probe.p <= p_true(probe.cell, probe.seed)
    return {**probe_labels(probe), "sat": sat, "status": "closed_form", "accuracy": 1.0 if sat else 0.9,
            "n_violations": 0 if sat else 1, "min_margin": 0.1, "final_loss": 0.0, "steps": 0,
            "wall_seconds": 0.0, "peak_bytes": 0, "device": device, "target_mean": 0.0, "target_var": 1.0,
            "offtarget_mean": 0.0, "offtarget_var": 1.0, "target_hist": [], "offtarget_hist": [],
            "singular_values": [1.0] * probe.cell.d, "error": ""}


def slow_runner(probe: Probe, settings, device: str) -> dict:
    time.sleep(SLEEP_S)
    return runner(probe, settings, device)


def main(argv: list[str]) -> int:
    """The driver (every check, embedded Ray, two actors) with slow_runner instead of the kernels."""
    from lamcap.orchestrator.runtime.driver import execute
    from lamcap.orchestrator.spec import load_spec

    spec_file, store, flush = argv
    report = execute(load_spec(spec_file), store, workers=2, progress=False, runner=slow_runner,
                     flush_seconds=float(flush))
    print(f"{report.probes_run} probes run, {report.probes_reused} reused from the store")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
