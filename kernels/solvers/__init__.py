"""Solve one instance with a named solver, then verify the weights in float64.

`solve(spec, solver, rank, settings, device) -> Outcome` is the one entry the
orchestrator calls. SAT always comes from lamcap.kernels.verify on the returned W, never
from a solver's own count.

Sharded (`collective` of lamcap.kernels.sharding, one process per shard), every shard runs this
same function on its rows; each returns the same Outcome (its `shards` field says how many ran
it; `peak_bytes` and `wall_seconds` are the largest shard's). The lp solver runs on one device only.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.competitors import CompetitorSource, SourcePlan
from lamcap.kernels.device_share import memory_share
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.input_scores import input_scores
from lamcap.kernels.memory import PeakMemory
from lamcap.kernels.outcome import KERNEL, Outcome
from lamcap.kernels.scores import Scores
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.sharding import SOLO, Collective, check_shards
from lamcap.kernels.verify import Verification, verify
from lamcap.kernels.vocabulary import DEVICE_CHOICES, SOLVERS


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for a requested 'cpu', 'cuda' or 'auto'; InvalidInput if unavailable."""
    if device not in DEVICE_CHOICES:
        raise InvalidInput(f"unknown device {device!r}; expected one of {DEVICE_CHOICES}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device 'cuda' requested but no CUDA device is available")
    return device


def check_solvable(spec: InstanceSpec, solver: str, rank: int, shards: int = 1) -> None:
    """Raise InvalidInput, before any work, if this solver cannot take this probe (on `shards` shards)."""
    if solver not in SOLVERS:
        raise InvalidInput(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= spec.d:
        raise InvalidInput(f"rank={rank!r} must be an integer in 1..d={spec.d}")
    check_shards(shards, spec.p)
    if solver == "lp" and shards > 1:
        raise InvalidInput(f"shards={shards}: the lp solver runs on one device only (give shards=1)")
    if solver == "lp":
        if rank < spec.d:
            raise InvalidInput(f"the lp solver handles full rank only; got rank={rank} < d={spec.d}")
        from lamcap.kernels.solvers.lp import check_lp_size

        check_lp_size(spec.d, spec.p)


NO_PLAN = SourcePlan("none", 0, 0, "none", "none")  # solvers without the fused loss


class SolverRun(NamedTuple):
    """What a solver hands to verification: W, steps, a provisional status, its fused-loss plan, and (lp) t*."""

    w: torch.Tensor
    steps: int
    status: str
    plan: SourcePlan = NO_PLAN
    lp_margin: float = math.nan  # lp: t* with W in [-1, 1] (0 when UNSAT); NaN for the other solvers
    scores: Scores | None = None  # W's float64 score blocks, when the solver computed them (adam's float64 count)
    source: CompetitorSource | None = None  # the competitors the solver walked (verification may read them)


def _run_solver(
    instance: Instance, solver: str, rank: int, settings: SolverSettings, collective: Collective
) -> SolverRun:
    if solver == "hebbian":
        from lamcap.kernels.solvers.hebbian import solve_hebbian

        return SolverRun(solve_hebbian(instance, rank), 0, "closed_form")
    if solver == "lp":
        from lamcap.kernels.solvers.lp import solve_lp

        result = solve_lp(instance)  # UNSAT: the zero W, which stores nothing
        return SolverRun(result.w, result.rounds, "feasible" if result.sat else "infeasible", NO_PLAN, result.lower)
    from lamcap.kernels.solvers.adam import train_adam

    trained = train_adam(instance, rank, settings, collective)
    return SolverRun(trained.w, trained.steps, trained.status, trained.plan, scores=trained.scores,
                     source=trained.source)


def _normalised_margin(run: SolverRun, check: Verification) -> float:
    """lp_margin of the Outcome: t* / sigma_off of the optimal W; 0 when UNSAT; NaN for other solvers."""
    if math.isnan(run.lp_margin) or run.lp_margin == 0.0:
        return run.lp_margin
    return run.lp_margin / check.sigma_off


def _final_status(solver: str, status: str, check: Verification) -> str:
    if solver == "lp" and status == "feasible" and not check.sat:
        raise RuntimeError(f"lp found a feasible W but verification finds {check.n_violations} violations")
    if solver == "adam" and status == "max_steps" and check.sat:
        return "converged"  # the last optimiser step stored the rest
    return status


def solve_with_weights(
    spec: InstanceSpec,
    solver: str,
    rank: int,
    settings: SolverSettings = SolverSettings(),
    device: str = "cpu",
    collective: Collective = SOLO,
) -> tuple[Outcome, torch.Tensor]:
    """`solve`, also returning the verified W (float64, on the CPU)."""
    check_solvable(spec, solver, rank, collective.size)
    device = resolve_device(device)
    memory = PeakMemory(device)
    memory.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    instance = Instance(spec, device)
    run = _run_solver(instance, solver, rank, settings, collective)
    w, plan = run.w, run.plan
    if collective.size > 1:  # a guard: the replicated W is the same on every shard; verify rank 0's everywhere
        w = collective.broadcast_(w.contiguous())
    check = verify(instance, w, collective, run.scores, run.source)
    run = run._replace(scores=None, source=None)  # the competitors are not needed again
    status = _final_status(solver, run.status, check)
    own = input_scores(instance, w, check.mean_off, check.sigma_off)  # input 0: every shard can build it
    wall, peak, cpu = _largest(collective, time.perf_counter() - start, memory.peak(),
                               time.process_time() - cpu_start, device)
    outcome = Outcome(
        sat=check.sat,
        n_violations=check.n_violations,
        accuracy=check.accuracy,
        min_margin=check.min_margin,
        final_loss=check.loss,
        steps=run.steps,
        status=status,
        wall_seconds=wall,
        peak_bytes=peak,
        device=device,
        target_mean=check.target_mean,
        target_var=check.target_var,
        offtarget_mean=check.offtarget_mean,
        offtarget_var=check.offtarget_var,
        generator=instance.generator,
        kernel=KERNEL,
        mode=plan.mode,
        chunk_rows=plan.chunk_rows,
        chunk_cols=plan.chunk_cols,
        storage_dtype=plan.storage,
        matmul_precision=plan.precision,
        target_hist=[int(c) for c in check.target_hist],
        offtarget_hist=[int(c) for c in check.offtarget_hist],
        singular_values=[float(s) for s in check.singular_values],
        input_target_score=own.target,
        input_competitor_hist=[int(c) for c in own.competitor_hist],
        cpu_seconds=cpu,
        lp_margin=_normalised_margin(run, check),
        shards=collective.size,
        memory_share=memory_share() if device == "cuda" else 1.0,
    )
    return outcome, w.detach().double().cpu()


def _largest(collective: Collective, wall: float, peak: int, cpu: float, device: str) -> tuple[float, int, float]:
    """(wall seconds, peak bytes, CPU seconds) of the slowest, the largest and the busiest shard (unsharded:
    this process's)."""
    if collective.size == 1:
        return wall, peak, cpu
    got = collective.max_(torch.tensor([wall, float(peak), cpu], dtype=torch.float64, device=device)).tolist()
    return got[0], int(got[1]), got[2]


def warm_up(device: str = "cpu") -> None:
    """Pay one-off costs before the first timed probe: torch.optim's first step imports torch._dynamo (~1 s)."""
    solve(InstanceSpec("op", 2, 2, 0), "adam", 2, SolverSettings(max_steps=1), device)


def solve(
    spec: InstanceSpec,
    solver: str,
    rank: int,
    settings: SolverSettings = SolverSettings(),
    device: str = "cpu",
    collective: Collective = SOLO,
) -> Outcome:
    """Build the instance on `device`, run `solver` at `rank`, verify in float64, report (sharded: this
    process's shard of the rows, with the gang's `collective`)."""
    return solve_with_weights(spec, solver, rank, settings, device, collective)[0]
