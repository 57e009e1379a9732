"""One probe outside a sweep (`lamcap trial`): every check before any work, then the solve in this process.

A trial on a gang of actors (shards > 1, or a cluster's address) runs through
lamcap.orchestrator.runtime.gang_trial; each member solves its shard here, with the gang's collective.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lamcap.errors import InvalidInput
from lamcap.orchestrator.runtime.cluster import check_placeable, local_devices
from lamcap.predictions.units import alpha_of, alpha_to_p, rank_of


@dataclass(frozen=True)
class TrialPlan:
    """A validated trial: the instance, the rank, the solver settings and the resolved device."""

    spec: Any  # kernels.disorder.InstanceSpec
    rank: int
    solver: str
    settings: Any  # kernels.solvers.settings.SolverSettings
    device: str
    alpha_asked: float | None = None
    threads: int | None = None  # CPU threads asked for (None: lamcap.kernels.threads chooses)
    shards: int = 1  # devices (Ray actors of one placement group) the probe's inputs are split over
    address: str | None = None  # the Ray cluster a gang trial joins (None: an embedded Ray)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value_problems(problem: Any, d: Any, p: Any, alpha: Any, rank: Any, rho: Any, seed: Any, solver: Any,
                    device: Any, shards: Any) -> list[str]:
    """Every bad plain value of a trial, each message naming it."""
    from lamcap.kernels.vocabulary import DEVICE_CHOICES, PROBLEMS, SOLVERS

    out = []
    if problem not in PROBLEMS:
        out.append(f"unknown problem {problem!r}; expected one of {PROBLEMS}")
    if not _is_int(d) or d < 2:
        out.append(f"d={d!r} must be an integer >= 2")
    if (p is None) == (alpha is None):
        out.append("give exactly one of p and alpha")
    elif p is not None and (not _is_int(p) or p < 2):
        out.append(f"p={p!r} must be an integer >= 2")
    elif alpha is not None and not (_is_real(alpha) and alpha > 0):
        out.append(f"alpha={alpha!r} must be a positive number")
    if rank is not None and rho is not None:
        out.append("give at most one of rank and rho")
    elif rho is not None and not (_is_real(rho) and 0 < rho <= 1):
        out.append(f"rho={rho!r} is not in (0, 1]")
    elif rank is not None and (not _is_int(rank) or rank < 1 or (_is_int(d) and rank > d)):
        out.append(f"rank={rank!r} is not in 1..d = 1..{d}")
    if not _is_int(seed) or seed < 0:
        out.append(f"seed={seed!r} must be a non-negative integer")
    if solver not in SOLVERS:
        out.append(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    if device not in DEVICE_CHOICES:
        out.append(f"unknown device {device!r}; expected one of {DEVICE_CHOICES}")
    if not _is_int(shards) or shards < 1:
        out.append(f"shards={shards!r} must be an integer >= 1")
    return out


def plan_trial(problem: str, d: int, p: int | None = None, *, alpha: float | None = None,
               rank: int | None = None, rho: float | None = None, seed: int = 0, solver: str = "adam",
               steps: int | None = None, lr: float | None = None, device: str = "auto",
               mode: str = "auto", threads: int | None = None, shards: int = 1,
               address: str | None = None) -> TrialPlan:
    """Every check of a trial, before any work: values (every bad one named in one message), the solver's
    limits, the device, the memory (of one shard), and for a gang (shards > 1 or an address) that the Ray
    cluster can ever place it."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.settings import SolverSettings
    from lamcap.kernels.solvers import check_solvable, resolve_device
    from lamcap.kernels.threads import choose_threads

    problems = _value_problems(problem, d, p, alpha, rank, rho, seed, solver, device, shards)
    changes = {k: v for k, v in (("max_steps", steps), ("lr", lr)) if v is not None}
    try:
        settings = dataclasses.replace(SolverSettings(mode=mode), **changes)
    except InvalidInput as exc:
        problems.append(str(exc))
    if problems:
        raise InvalidInput("; ".join(problems))
    spec = InstanceSpec(problem, d, p if p is not None else max(2, round(alpha_to_p(alpha, d))), seed)
    r = rank_of(rho, d) if rho is not None else (d if rank is None else rank)
    check_solvable(spec, solver, r, shards)
    choose_threads(0.0, threads)  # checks a requested count
    gang = shards > 1 or address is not None
    if gang and threads is not None:
        raise InvalidInput("--threads applies to a trial in this process; the actors of a gang run one thread each")
    resolved = resolve_device(device) if address is None else device  # a cluster's 'auto': decided once joined
    if gang and address is None:  # an embedded Ray could never place more; a joined cluster is asked once joined
        check_placeable(shards, resolved, local_devices(resolved))
    if address is None:  # this machine is the device; a cluster's memory is checked once its actors say theirs
        check_memory(spec, r, solver, settings, resolved, shards=shards)
    return TrialPlan(spec, r, solver, settings, resolved, alpha, threads, shards, address)


def check_memory(spec: Any, rank: int, solver: str, settings: Any, device: str, *, shards: int = 1,
                 memory_bytes: int | None = None, gpu_memory: int | None = None) -> None:
    """InvalidInput with the estimate and the limit when one probe (one shard of it) cannot fit the device's
    memory (memory_bytes; default this process's device)."""
    from lamcap.kernels.budget import check_fits, gpu_total_memory, memory_limit_bytes, probe_memory

    memory = memory_limit_bytes(device) if memory_bytes is None else memory_bytes
    if device == "cuda" and gpu_memory is None:
        gpu_memory = gpu_total_memory()
    estimate = probe_memory(spec.problem, spec.d, spec.p, rank, solver, mode=settings.mode,
                            storage_dtype=settings.storage_dtype, device_type=device,
                            total_memory=gpu_memory if device == "cuda" else None,
                            memory_budget_bytes=settings.memory_budget_bytes, shards=shards)
    what = f"a {spec.problem} probe with d={spec.d}, p={spec.p} ({solver}, mode {estimate.mode}" + \
        (f", one of {shards} shards)" if shards > 1 else ")")
    check_fits(estimate, memory, what, device)


def trial_record(plan: TrialPlan, outcome: Any) -> dict:
    """The record of one trial: the instance, rank, solver, settings and the Outcome's fields."""
    spec = plan.spec
    return {"problem": spec.problem, "d": spec.d, "p": spec.p, "alpha": alpha_of(spec.p, spec.d),
            "rank": plan.rank, "rho": plan.rank / spec.d, "seed": spec.seed, "solver": plan.solver,
            "settings": dataclasses.asdict(plan.settings), **outcome.as_record()}


def solve_trial(plan: TrialPlan, collective: Any = None) -> tuple[dict, Any]:
    """(record, verified W as a float64 CPU tensor) of a planned trial solved in this process: the whole probe,
    or with a gang's `collective` this process's shard of it (inside a gang's actor)."""
    from lamcap.kernels.budget import step_work
    from lamcap.kernels.sharding import SOLO
    from lamcap.kernels.solvers import solve_with_weights
    from lamcap.kernels.threads import use_threads

    if plan.device == "cpu" and collective is None:
        use_threads(step_work(plan.spec.problem, plan.spec.d, plan.spec.p), plan.threads)
    outcome, w = solve_with_weights(plan.spec, plan.solver, plan.rank, plan.settings, plan.device,
                                    collective or SOLO)
    return trial_record(plan, outcome), w
