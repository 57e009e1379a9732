"""Time the kernels a probe spends its seconds in, at a few sizes, on this machine (for `lamcap plan`).

A probe of the paper's protocol costs: building the competitor source (DP `materialize` generates
the p^2 d competitors once), `steps` Adam steps of the fused loss, and what every probe does
around its solver (the instance, one float64 verification, the record): a whole Hebbian probe.
`calibrate` times each on real instances of the kernels' public API, one thread (what a sweep's
CPU actor has), and returns raw timings, kinds 'step', 'setup', 'verify' and 'probe' (a whole
`solve(..., 'hebbian')`); fitting them to flop and byte counts is the cost model's job
(lamcap.orchestrator.planning.cost_model). No Ray, no files.

Adam steps are timed by differencing two runs of `train_adam` on the same instance (k1 and k2
steps at a load above capacity, where nothing converges early): per step = (t2 - t1) / (k2 - k1),
setup = t1 - k1 per step (source construction and optimiser state). k2 grows until the timed steps
outweigh the setup SETUP_MULTIPLE times, so that the setup's jitter cannot set the difference. Every
timing is the median of `repeats` runs (fewer for slow ones), so that one descheduled run on a shared
machine does not set it.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.solvers import resolve_device, solve
from lamcap.kernels.solvers.adam import train_adam
from lamcap.kernels.verify import verify
from lamcap.kernels.weights import hebbian

SLOW_SECONDS = 1.0  # a run longer than this is timed once, not `repeats` times
STEP_SECONDS = 0.25  # the k2 - k1 timed steps of a size add up to at least this (and MIN_STEPS)...
SETUP_MULTIPLE = 4.0  # ...and to this many times the setup, whose run-to-run jitter the difference keeps
MIN_STEPS = 3
MAX_STEPS = 240


@dataclass(frozen=True)
class Size:
    """One calibration point: an instance (problem, d, p) and the competitor mode its steps use."""

    problem: str
    d: int
    p: int
    mode: str = "materialize"  # 'materialize' or 'regenerate' (OP always holds its outputs)


@dataclass(frozen=True)
class Timing:
    """Median seconds of one kernel at one size: kind 'step', 'setup', 'verify' or 'probe'.

    seconds: wall clock; cpu_seconds: this process's CPU time over the same runs (on a busy
    machine the wall clock also counts the time other processes held the core).
    """

    kind: str
    problem: str
    mode: str
    d: int
    p: int
    seconds: float
    repeats: int
    cpu_seconds: float = float("nan")


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


@dataclass(frozen=True)
class _Clocked:
    wall: float
    cpu: float
    n: int

    def minus(self, other: _Clocked, scale: float = 1.0) -> tuple[float, float]:
        return self.wall - scale * other.wall, self.cpu - scale * other.cpu


def _median_seconds(run: Callable[[], object], repeats: int, device: str) -> _Clocked:
    """Median wall and CPU seconds of `run` over `repeats` calls (one call when the first is slow)."""
    walls: list[float] = []
    cpus: list[float] = []
    while len(walls) < repeats:
        _sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        run()
        _sync(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        if walls[0] > SLOW_SECONDS:
            break
    return _Clocked(statistics.median(walls), statistics.median(cpus), len(walls))


def _adam_run(instance: Instance, size: Size, steps: int) -> Callable[[], object]:
    settings = SolverSettings(max_steps=steps, mode=size.mode)
    return lambda: train_adam(instance, size.d, settings)


def time_size(size: Size, device: str = "cpu", repeats: int = 3) -> list[Timing]:
    """Step, setup, verification and whole-probe timings of one size (the instance is generated first)."""
    instance = Instance(InstanceSpec(size.problem, size.d, size.p, 0), device)
    instance.inputs, instance.targets  # noqa: B018 - generated once, outside every timing
    one = _median_seconds(_adam_run(instance, size, 1), repeats, device)
    k = 1 + MIN_STEPS
    many = _median_seconds(_adam_run(instance, size, k), 1, device)
    for attempt in range(4):  # DP's setup (materialising p^2 d competitors) can take seconds and jitter by
        # 10%: the timed steps must outweigh it, or the difference measures the jitter (a 13x error was seen)
        step_wall, step_cpu = (max(x / (k - 1), 1e-9) for x in many.minus(one))
        setup = max(one.wall - step_wall, 0.0)
        wanted = 1 + int(min(MAX_STEPS, max(MIN_STEPS, max(STEP_SECONDS, SETUP_MULTIPLE * setup) / step_wall)))
        if wanted <= k or attempt == 3:
            break
        k = wanted
        many = _median_seconds(_adam_run(instance, size, k), repeats, device)
    w = hebbian(instance).to(device)
    check = _median_seconds(lambda: verify(instance, w), repeats, device)
    spec = InstanceSpec(size.problem, size.d, size.p, 0)
    whole = _median_seconds(lambda: solve(spec, "hebbian", size.d, device=device), repeats, device)
    common = dict(problem=size.problem, mode=size.mode, d=size.d, p=size.p)
    return [Timing("step", seconds=step_wall, cpu_seconds=step_cpu, repeats=min(one.n, many.n), **common),
            Timing("setup", seconds=max(one.wall - step_wall, 0.0), cpu_seconds=max(one.cpu - step_cpu, 0.0),
                   repeats=one.n, **common),
            Timing("verify", seconds=check.wall, cpu_seconds=check.cpu, repeats=check.n, **common),
            Timing("probe", seconds=whole.wall, cpu_seconds=whole.cpu, repeats=whole.n, **common)]


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


def device_rates(device: str = "cpu", seconds: float = 0.05) -> dict[str, float]:
    """Peak rates of `device` measured here (one thread on a CPU): float32 and float64 GEMM flops, streaming bytes per
    second (a sum over a large tensor), and the instance generator's samples per second; each the best of a few
    runs sized to take about `seconds`. The planner prices large GPU steps from these (a roofline), never by
    extrapolating small host-bound ones."""
    device = resolve_device(device)
    big = device == "cuda"
    n = 8192 if big else 384
    a = torch.randn(n, n, device=device)
    flops = 2.0 * n**3 / _best(lambda: a @ a, device)
    a64 = a[: n // 2, : n // 2].double()
    flops64 = 2.0 * (n // 2) ** 3 / _best(lambda: a64 @ a64, device)
    stream = torch.ones((1 << 28) if big else (1 << 23), device=device)
    bytes_per_s = 4.0 * stream.numel() / _best(lambda: stream.sum(), device)
    a = a64 = stream = None  # freed before the generator's blocks
    rows = 64 if big else 4
    instance = Instance(InstanceSpec("dp", 256, 4096, 0), device)
    samples = rows * 256 * 4096 / _best(lambda: instance.competitor_block(0, rows), device)
    return {"flops": flops, "flops64": flops64, "bytes_per_s": bytes_per_s, "samples_per_s": samples}


def _best(run: Callable[[], object], device: str, tries: int = 5) -> float:
    """The fastest of a few timed runs after a warm-up (peak rates: the best run is the least disturbed)."""
    run()
    best = float("inf")
    for _ in range(tries):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best
