"""What one probe costs on one device: the per-probe half of `lamcap plan` (lamcap.orchestrator.planning.plan).

Numbers in, numbers out: no torch, no Ray, no clocks. The numbers come from timings of this
machine (lamcap.kernels.calibrate, fitted by `from_timings`) or from the stated GPU model
(`stated_gpu_model`) where the device cannot be timed.

One probe (cell, p) of one device costs
    hebbian  probe(n): the instance, the closed form, the float64 verification and the record,
             with n = p^2 d (the verification dominates: the closed form is negligible);
    adam     setup(n) + steps * step(w) + probe(n) (+ verify(n) / 2 when SAT: the float64 count
             that confirms convergence), with w the step's work count: OP 4 p^2 d flops (scores,
             then the softmax-weighted sum), DP `materialize` 2 p^2 d competitor reads of the
             storage dtype's bytes, DP `regenerate` p^2 d generated samples;
    lp       a power law in d fitted to benchmarks/lp.py (LpModel), not calibrated per machine.
Each of setup, step, verify and probe is a Curve through calibrated (work, seconds) points.

Steps: an UNSAT Adam probe runs max_steps; a SAT one stops at a fraction of max_steps that grows
as p approaches the seed's own p* (SatSteps, measured in the demo sweep).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import competitor_mode, step_work
from lamcap.kernels.vocabulary import STORAGE_BYTES
from lamcap.orchestrator.spec import Cell, SweepSpec


# ---- curves through measured points -----------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """Seconds as a function of a work count, through (work, seconds) points (sorted, made non-decreasing).

    Between points: linear interpolation. Below the first: the line from the first segment's
    intercept (clamped to [0, t_first]). Above the last: the last segment's slope, clamped to
    [1/4, 2] x the average rate t_last / w_last (noise must not extrapolate to nonsense).
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = sorted((float(w), float(t)) for w, t in self.points)
        if not pts or any(w < 0 or not math.isfinite(t) or t < 0 for w, t in pts):
            raise InvalidInput(f"a cost curve needs points (work >= 0, seconds >= 0), got {self.points!r}")
        running, out = 0.0, []
        for w, t in pts:
            running = max(running, t)
            out.append((w, running))
        object.__setattr__(self, "points", tuple(out))

    def __call__(self, work: float) -> float:
        pts = self.points
        if len(pts) == 1:
            w0, t0 = pts[0]
            return t0 * work / w0 if w0 > 0 and work > w0 else t0
        if work <= pts[0][0]:
            (w0, t0), (w1, t1) = pts[0], pts[1]
            slope = (t1 - t0) / (w1 - w0) if w1 > w0 else 0.0
            intercept = min(max(t0 - slope * w0, 0.0), t0)
            return intercept + (t0 - intercept) * (work / w0 if w0 > 0 else 1.0)
        for (w0, t0), (w1, t1) in zip(pts, pts[1:]):
            if work <= w1:
                return t0 + (t1 - t0) * (work - w0) / (w1 - w0) if w1 > w0 else t1
        (w0, t0), (w1, t1) = pts[-2], pts[-1]
        average = t1 / w1 if w1 > 0 else 0.0
        slope = (t1 - t0) / (w1 - w0) if w1 > w0 else average
        return t1 + min(max(slope, average / 4), 2 * average) * (work - w1)

    @classmethod
    def linear(cls, overhead: float, rate: float) -> Curve:
        """overhead + work / rate (a stated model)."""
        return cls(((0.0, overhead), (1e18, overhead + 1e18 / rate)))


@dataclass(frozen=True)
class Roofline:
    """Seconds of a step whose host and device work overlap: the larger of the host's fixed cost per step and the
    device's time, work / rate (a GPU: small probes are bound by the host's kernel launches, large ones by
    arithmetic or memory bandwidth). `share`: probes sharing the device, each getting 1/share of its rate."""

    overhead: float  # host seconds per step
    rate: float  # work per device-second

    def __call__(self, work: float, share: int = 1) -> float:
        return max(self.overhead, share * work / self.rate)


# ---- the parts of the model ---------------------------------------------------------------------
def _interpolate(knots: tuple[tuple[float, float], ...], x: float) -> float:
    """Piecewise linear through (x, y) knots, flat outside them."""
    if x <= knots[0][0]:
        return knots[0][1]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return knots[-1][1]


@dataclass(frozen=True)
class SatSteps:
    """Adam steps of a SAT probe as a fraction of max_steps, against x = p / (the seed's p*) and d.

    Measured (lr 1.0, max_steps 2000) in the demo sweep (d = 8 .. 24, 3 seeds) and a full-rank
    sweep at d = 32, 48, 64 (2 seeds). Full rank: steps are bimodal. Below x_h(d) = 1 - w(d) a
    SAT probe converges in a few % of max_steps (`far`); from x_h on it is hard, from
    hard_start f1(d) at x_h to f1(d) at x = 1. f1(d) = top (1 - exp(-(ln d - ln_d0) / scale))
    saturates (measured 0.09 at d = 8, 0.41 at 24, 0.55 at 32, 0.61 at 48, 0.66 at 64) and the
    hard region widens with d, w(d) = width_24 (d / 24)^width_exponent (hard from x = 0.94 at
    d = 24, 0.93 at 32 and 48; capped). Rank-constrained (two-layer) memories converge late
    everywhere near their threshold, whatever d (`low_rank`). Beyond d = 64 both laws extrapolate.
    """

    far: tuple[tuple[float, float], ...] = ((0.0, 0.013), (0.9, 0.02), (1.0, 0.025))
    top: float = 0.8
    ln_d0: float = 1.93
    scale: float = 1.28
    hard_start: float = 0.65
    width_24: float = 0.065
    width_exponent: float = 0.6
    width_cap: float = 0.2
    low_rank: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.75, 0.12), (0.85, 0.3), (0.95, 0.75),
                                                 (1.0, 0.8))

    def at_threshold(self, d: int) -> float:
        """Full rank, x = 1: the fraction of max_steps the last SAT probe of an exact search takes."""
        rise = 1.0 - math.exp(-(math.log(d) - self.ln_d0) / self.scale)
        return max(self.far[-1][1], self.top * rise)

    def hard_width(self, d: int) -> float:
        """Full rank: 1 - x_h(d), how far below p* the slow convergence begins."""
        return min(self.width_cap, self.width_24 * (d / 24.0) ** self.width_exponent)

    def fraction(self, x: float, rho: float, d: int) -> float:
        if rho < 1:
            return _interpolate(self.low_rank, x)
        width, top = self.hard_width(d), self.at_threshold(d)
        if x < 1.0 - width:
            return _interpolate(self.far, x)
        start = max(self.hard_start * top, _interpolate(self.far, x))
        return start + (top - start) * min(1.0, (x - 1.0 + width) / width)


@dataclass(frozen=True)
class LpModel:
    """CPU seconds of one lp probe near threshold: seconds_d16 (d / 16)^exponent.

    A least-squares fit in log-log of one-thread CPU seconds near threshold on the build machine:
    0.02 s at d = 8 and 0.2 s at d = 12 (lp trials, p from 0.9 to 1.1 p*), 1.0 s at 16, 18 s at 24,
    165 s at 32, 379 s at 36 (benchmarks/lp.py); every point within a factor 1.5 of the fit. It is
    not calibrated per machine: HiGHS's dense simplex scales like the CPU's single-thread speed.
    """

    seconds_d16: float = 1.46
    exponent: float = 6.6

    def __call__(self, d: int) -> float:
        return self.seconds_d16 * (d / 16.0) ** self.exponent


@dataclass(frozen=True)
class CostModel:
    """Seconds of each part of a probe on one device; keys (problem, mode) for steps and setup."""

    device: str  # 'cpu' or 'cuda'
    source: str  # how the numbers were obtained (calibrated here, or a stated model), for the reader
    step: dict[tuple[str, str], Curve | Roofline]
    setup: dict[tuple[str, str], Curve]
    verify: dict[str, Curve]
    probe: dict[str, Curve]  # what any probe costs around its solver (a whole Hebbian probe)
    budget_bytes: int  # auto's budget for materialised DP competitors when the spec gives none
    memory_bytes: float = math.inf  # the device's memory: a probe that must hold more cannot run
    sat_steps: SatSteps = SatSteps()
    lp: LpModel = LpModel()

    def step_curve(self, problem: str, mode: str) -> Curve | Roofline:
        key = (problem, "materialize" if problem == "op" else mode)
        if key not in self.step:
            raise InvalidInput(f"the cost model ({self.source}) has no timing for {problem} steps in mode {mode!r}")
        return self.step[key]


def competitor_bytes(problem: str, p: int, d: int, storage_bytes: int) -> float:
    """Bytes of the competitors a probe walks: OP's p x d outputs, DP's p x p x d tensor."""
    return float(p) * d * 4 if problem == "op" else float(p) * p * d * storage_bytes


# ---- one probe ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeContext:
    """What a probe's cost depends on besides (cell, p): the spec's settings and the model."""

    max_steps: int
    mode: str
    storage_bytes: int
    budget_bytes: int
    model: CostModel
    share: int = 1  # probes sharing one device (actors per GPU): each holds 1/share of it

    @classmethod
    def of(cls, spec: SweepSpec, model: CostModel, share: int = 1) -> ProbeContext:
        s = spec.solver_settings
        budget = s.memory_budget_bytes if s.memory_budget_bytes is not None else model.budget_bytes
        return cls(s.max_steps, s.mode, STORAGE_BYTES.get(s.storage_dtype, 4), budget // share, model, share)

    def mode_at(self, cell: Cell, p: int) -> str:
        return competitor_mode(cell.problem, cell.d, p, self.mode, self.storage_bytes, self.budget_bytes)

    def steps(self, cell: Cell, p: int, p_true: float) -> int:
        """Adam steps of a probe at p for a seed whose threshold is p_true (SAT iff p <= p_true)."""
        if p > p_true:
            return self.max_steps
        return round(self.max_steps * self.model.sat_steps.fraction(p / p_true, cell.rho_eff, cell.d))

    def seconds(self, cell: Cell, p: int, sat: bool, steps: int) -> float:
        """Device-seconds of one probe that takes `steps` Adam steps (ignored for hebbian and lp): its wall time
        over the probes sharing its device."""
        return self.wall_seconds(cell, p, sat, steps) / self.share

    def wall_seconds(self, cell: Cell, p: int, sat: bool, steps: int) -> float:
        """Wall seconds of one probe that takes `steps` Adam steps, its device shared `share` ways."""
        m, n = self.model, float(p) * p * cell.d
        if cell.solver == "lp":
            return m.lp(cell.d)
        around = m.probe[cell.problem](n)
        if cell.solver == "hebbian":
            return around
        mode = self.mode_at(cell, p)
        curve = m.step_curve(cell.problem, mode)
        work = step_work(cell.problem, cell.d, p, mode)
        step = curve(work, self.share) if isinstance(curve, Roofline) else curve(work)
        setup = m.setup[(cell.problem, mode)](n) if (cell.problem, mode) in m.setup else 0.0
        return setup + steps * step + around + (m.verify[cell.problem](n) / 2 if sat else 0.0)

    def probe_seconds(self, cell: Cell, p: int, p_true: float) -> float:
        """Device-seconds of a probe at p for a seed whose threshold is p_true."""
        sat = p <= p_true
        return self.seconds(cell, p, sat, self.steps(cell, p, p_true) if cell.solver == "adam" else 0)


# ---- where the numbers come from ----------------------------------------------------------------
CLOCKS = ("wall", "cpu")


# What the fused loss's step achieves of a device's measured peak (rates from lamcap.kernels.calibrate.device_rates):
# OP's two products per step against the float32 GEMM rate, DP's two reads of its competitors against the
# streaming bandwidth; measured on an H200 (OP d = 512, p = 21,000: 22 ms per step of 4 p^2 d flops, 0.68 of its
# 60 TFLOP/s; DP d = 256, p = 6,300: 20.5 ms per step of two float32 reads, 0.92 of its 4.3 TB/s).
STEP_EFFICIENCY = {("op", "materialize"): 0.68, ("dp", "materialize"): 0.92, ("dp", "regenerate"): 0.9}


def device_step_rates(rates: dict) -> dict[tuple[str, str], float]:
    """Step work per second on a device whose peak rates were measured (flops, bytes_per_s, samples_per_s)."""
    reads = rates["bytes_per_s"] / 4  # float32 competitors read per second
    generated = 1.0 / (1.0 / rates["samples_per_s"] + 2.0 / reads)  # each sample generated, then read twice
    peak = {("op", "materialize"): rates["flops"], ("dp", "materialize"): reads, ("dp", "regenerate"): generated}
    return {key: STEP_EFFICIENCY[key] * value for key, value in peak.items()}


def device_probe_rates(rates: dict) -> dict[tuple, float]:
    """p^2 d per second of the per-probe parts on a device whose peak rates were measured: the float64
    verification (OP: two passes of 2 flops per score at the float64 rate; DP: each competitor generated once and
    read in float64 twice), the whole Hebbian probe (the same), and DP's materialising setup (generate, write)."""
    fp64 = rates.get("flops64", rates["flops"] / 2)
    per_sample, bandwidth = 1.0 / rates["samples_per_s"], rates["bytes_per_s"]
    check = {"op": fp64 / 4, "dp": 1.0 / (per_sample + 16.0 / bandwidth)}
    return {**{("verify", k): v for k, v in check.items()}, **{("probe", k): v for k, v in check.items()},
            ("setup", "op", "materialize"): bandwidth,
            ("setup", "dp", "materialize"): 1.0 / (per_sample + 4.0 / bandwidth)}


def from_timings(timings: Iterable, device: str, source: str, budget_bytes: int, clock: str = "wall",
                 memory_bytes: float = math.inf, rates: dict | None = None) -> CostModel:
    """A model fitted to lamcap.kernels.calibrate timings (objects with kind, problem, mode, d, p,
    seconds and, for clock 'cpu', cpu_seconds: what one free core would take on a busy machine).

    Steps are fitted to their work count (step_work, float32 storage: calibration times float32),
    setup, verification and the whole-probe overhead to p^2 d. With a device's measured peak `rates` (a GPU),
    a step is a Roofline instead: the host's cost per step (the smallest size timed, where the host binds) against
    the device's rate, so that no large probe is priced by extrapolating the host-bound small ones.
    """
    if clock not in CLOCKS:
        raise InvalidInput(f"clock={clock!r} is not one of {CLOCKS}")
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for t in timings:
        n = float(t.p) * t.p * t.d
        work = step_work(t.problem, t.d, t.p, t.mode) if t.kind == "step" else n
        key = (t.kind, t.problem) if t.kind in ("verify", "probe") else (t.kind, t.problem, t.mode)
        groups.setdefault(key, []).append((work, t.seconds if clock == "wall" else t.cpu_seconds))
    curves: dict[tuple, Curve | Roofline] = {key: Curve(tuple(points)) for key, points in groups.items()}
    if rates is not None:
        step_rates = {("step", *k): v for k, v in device_step_rates(rates).items()}
        for key, points in groups.items():
            rate = step_rates.get(key, device_probe_rates(rates).get(key))
            if rate is not None:
                curves[key] = Roofline(min(t for _, t in points), rate)
    return CostModel(
        device=device, source=source, budget_bytes=budget_bytes, memory_bytes=memory_bytes,
        step={k[1:]: c for k, c in curves.items() if k[0] == "step"},
        setup={k[1:]: c for k, c in curves.items() if k[0] == "setup"},
        verify={k[1]: c for k, c in curves.items() if k[0] == "verify"},
        probe={k[1]: c for k, c in curves.items() if k[0] == "probe"},
    )
