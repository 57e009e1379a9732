"""Time the kernels a probe spends its seconds in, at a few sizes, on this machine (for `lamcap plan`).

A probe of the paper's protocol costs: building the competitor source (DP `materialize` generates
the p^2 d competitors once), `steps` Adam steps of the fused loss, and what every probe does
around its solver (the instance, one float64 verification, the record): a whole Hebbian probe.
`calibrate` times each on real instances of the kernels' public API, one thread (what a sweep's
CPU actor has), and returns raw timings, kinds 'step', 'setup', 'verify' and 'probe' (a whole
`solve(..., 'hebbian')`); fitting them to flop and byte counts is the cost model's job
(lamcap.orchestrator.cost_model). No Ray, no files.

Adam steps are timed by differencing two runs of `train_adam` on the same instance (k1 and k2
steps at a load above capacity, where nothing converges early): per step = (t2 - t1) / (k2 - k1),
setup = t1 - k1 per step (source construction and optimiser state). Every timing is the median of
`repeats` runs (fewer for slow ones), so that one descheduled run on a shared machine does not set it.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.errors import InvalidInput
from lamcap.kernels.solvers import resolve_device, solve
from lamcap.kernels.solvers.adam import train_adam
from lamcap.kernels.solvers.settings import SolverSettings
from lamcap.kernels.verify import verify
from lamcap.kernels.weights import hebbian

SLOW_SECONDS = 1.0  # a run longer than this is timed once, not `repeats` times
STEP_SECONDS = 0.25  # the k2 - k1 timed steps of a size add up to about this (at least MIN_STEPS)
MIN_STEPS = 3
MAX_STEPS = 60


@dataclass(frozen=True)
class Size:
    """One calibration point: an instance (problem, d, p) and the competitor mode its steps use."""

    problem: str
    d: int
    p: int
    mode: str = "materialize"  # 'materialize' or 'regenerate' (OP always holds its outputs)


@dataclass(frozen=True)
class Timing:
    """Median seconds of one kernel at one size: kind 'step', 'setup', 'verify' or 'probe'."""

    kind: str
    problem: str
    mode: str
    d: int
    p: int
    seconds: float
    repeats: int


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread (a sweep's CPU actor), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_seconds(run: Callable[[], object], repeats: int, device: str) -> tuple[float, int]:
    """Median wall seconds of `run` over `repeats` calls (one call when the first is slow)."""
    times: list[float] = []
    while len(times) < repeats:
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
        if times[0] > SLOW_SECONDS:
            break
    return statistics.median(times), len(times)


def _adam_run(instance: Instance, size: Size, steps: int) -> Callable[[], object]:
    settings = SolverSettings(max_steps=steps, mode=size.mode)
    return lambda: train_adam(instance, size.d, settings)


def time_size(size: Size, device: str = "cpu", repeats: int = 3) -> list[Timing]:
    """Step, setup and verification timings of one size (the instance is generated before timing)."""
    instance = Instance(InstanceSpec(size.problem, size.d, size.p, 0), device)
    instance.inputs, instance.targets  # noqa: B018 - generated once, outside every timing
    one, n_one = _median_seconds(_adam_run(instance, size, 1), repeats, device)
    k = 1 + MIN_STEPS
    probe, _ = _median_seconds(_adam_run(instance, size, k), 1, device)
    per_step_guess = max((probe - one) / (k - 1), 1e-6)
    k = 1 + int(min(MAX_STEPS, max(MIN_STEPS, STEP_SECONDS / per_step_guess)))
    many, n_many = _median_seconds(_adam_run(instance, size, k), repeats, device)
    step = max((many - one) / (k - 1), 1e-9)
    w = hebbian(instance).to(device)
    check, n_check = _median_seconds(lambda: verify(instance, w), repeats, device)
    spec = InstanceSpec(size.problem, size.d, size.p, 0)
    whole, n_whole = _median_seconds(lambda: solve(spec, "hebbian", size.d, device=device), repeats, device)
    common = dict(problem=size.problem, mode=size.mode, d=size.d, p=size.p)
    return [Timing("step", seconds=step, repeats=min(n_one, n_many), **common),
            Timing("setup", seconds=max(one - step, 0.0), repeats=n_one, **common),
            Timing("verify", seconds=check, repeats=n_check, **common),
            Timing("probe", seconds=whole, repeats=n_whole, **common)]


def calibrate(sizes: Sequence[Size], device: str = "cpu", repeats: int = 3) -> list[Timing]:
    """Time every size on `device` with one thread; InvalidInput where the device does not exist."""
    device = resolve_device(device)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInput(f"repeats={repeats!r} must be an integer >= 1")
    for size in sizes:
        if size.mode not in ("materialize", "regenerate"):
            raise InvalidInput(f"calibration mode {size.mode!r} is not 'materialize' or 'regenerate'")
        InstanceSpec(size.problem, size.d, size.p, 0)  # names a bad problem, d or p
    with one_thread():
        train_adam(Instance(InstanceSpec("op", 2, 2, 0), device), 2, SolverSettings(max_steps=1))  # warm-up
        return [t for size in sizes for t in time_size(size, device, repeats)]
