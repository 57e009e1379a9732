"""One probe as a pure function: solve and verify its instance, return a flat store record."""
from __future__ import annotations

from typing import Any

from lamcap.orchestrator.spec import Probe
from lamcap.store.schema import error_record


def probe_labels(probe: Probe, attempt: int = 1) -> dict:
    """The probe half of a record: cell fields, seed, p, alpha, purpose, attempt."""
    cell = probe.cell
    return {
        "problem": cell.problem, "solver": cell.solver, "rho": float(cell.rho), "rho_eff": cell.rho_eff,
        "rank": cell.rank, "d": cell.d, "seed": probe.seed, "p": probe.p, "alpha": probe.alpha,
        "purpose": probe.purpose, "attempt": attempt,
    }


def failed_record(probe: Probe, device: str, message: str, attempt: int = 1) -> dict:
    """The record of a probe that raised or whose actor kept dying: status 'error', never SAT."""
    return error_record(probe_labels(probe, attempt), device, message)


def run_probe(probe: Probe, solver_settings: Any, device: str, collective: Any = None) -> dict:
    """Solve `probe` on `device` with lamcap.kernels.solvers.solve (with a gang's `collective`: this process's
    shard of it); any exception becomes an 'error' record."""
    try:
        from lamcap.kernels.disorder import InstanceSpec
        from lamcap.kernels.sharding import SOLO
        from lamcap.kernels.solvers import solve

        spec = InstanceSpec(probe.cell.problem, probe.cell.d, probe.p, probe.seed)
        outcome = solve(spec, probe.cell.solver, probe.cell.rank, solver_settings, device, collective or SOLO)
        return {**probe_labels(probe), **outcome.as_record(), "error": ""}
    except Exception as exc:
        return failed_record(probe, device, f"{type(exc).__name__}: {exc}")


def _warm_up(device: str) -> None:
    """Pay the kernels' one-off costs (imports, the generator's table) before the first timed probe."""
    from lamcap.kernels.solvers import warm_up

    warm_up(device)


run_probe.warm_up = _warm_up  # type: ignore[attr-defined] - ProbeWorker calls a runner's warm_up at start
