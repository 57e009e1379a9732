"""What a sweep will cost, per cell and in total, before it runs: the model behind `lamcap plan`.

Numbers in, numbers out (no torch, no Ray, no clocks); a probe's seconds come from a
lamcap.orchestrator.planning.cost_model.CostModel. Per cell:

  * thresholds: the real ThresholdLearner (the spec's p_max and resolution) against a monotone
    oracle, SAT iff p <= p_true, for SIM_SEEDS simulated seeds with p_true = theory p* exp(sigma z),
    sigma = SPREAD[kind] sqrt(8 / d) and z the normal quantiles (i + 1/2) / SIM_SEEDS (deterministic);
    asked in rounds of the spec's search.width points, as a sweep asks them;
  * curve probes: the spec's curve loads around the median simulated alpha*, for every seed;
  * `cell_cost(cell, spec, model)`: the expected device-seconds of one seed's threshold search.

Totals: device-seconds summed over cells; with `workers`, a wall time of at least total / workers
and of at least the longest single search (its probes run one after another).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.curves import curve_loads
from lamcap.orchestrator.learners.threshold import ThresholdLearner, theory_guess
from lamcap.orchestrator.planning.cost_model import CostModel, ProbeContext, competitor_bytes
from lamcap.orchestrator.spec import Cell, SweepSpec

# Relative seed-to-seed spread of p* at d = 8, shrinking as sqrt(8 / d), per theory kind: the demo
# sweep's 3 seeds per cell (d = 8 .. 24) give 0.06 for Adam (p* within a few % of the theory on
# average) and 0.5 for Hebbian (p* of 3 to 20, where the finite-size Hebbian theory is rough).
SPREAD = {"optimal": 0.06, "hebbian": 0.5}
SIM_SEEDS = 48  # simulated seeds per cell


@lru_cache(maxsize=None)
def _quantiles(n: int) -> tuple[float, ...]:
    return tuple(NormalDist().inv_cdf((i + 0.5) / n) for i in range(n))


def simulated_thresholds(guess: float, d: int, spread: float, n: int = SIM_SEEDS) -> list[float]:
    """n seeds' p_true around the theory's guess, relative spread `spread` sqrt(8 / d)."""
    sigma = spread * math.sqrt(8.0 / d)
    return [max(1.0, guess * math.exp(sigma * z)) for z in _quantiles(n)]


def search_trace(cell: Cell, spec: SweepSpec, guess: float, p_true: float, width: int = 1) -> list[tuple[int, bool]]:
    """The (p, SAT) probes one seed's search visits, in order, `width` points asked at a time."""
    learner = ThresholdLearner(cell, 0, guess, spec.search.p_max, spec.resolution_of(cell))
    trace: list[tuple[int, bool]] = []
    while not learner.done and not learner.exhausted:
        points = learner.ask(width)
        if not points:
            break
        for p in points:
            learner.tell(p, p <= p_true)
            trace.append((p, p <= p_true))
    return trace


@dataclass(frozen=True)
class CellPlan:
    """The expected cost of one cell (all seeds), and what its probes look like."""

    problem: str
    solver: str
    rho: float
    d: int
    rank: int
    p_theory: float  # the finite-size theory's p*, the search's first guess
    p_low: int  # 5% and 95% quantiles of the p the search visits (simulated seeds)
    p_high: int
    mode: str  # Adam's competitor mode at p_high ('materialize' or 'regenerate'; OP holds its outputs); '-' else
    competitor_bytes: float  # competitors walked per step at p_high (DP: the p x p x d tensor)
    probes_per_threshold: float
    seconds_per_probe: float  # mean over the search's probes
    seconds_unsat_probe: float  # one UNSAT probe at the theory's p* (Adam: max_steps steps)
    seconds_per_threshold: float  # expected device-seconds of one seed's search
    curve_probes: int  # over all seeds
    curve_seconds: float
    seeds: int

    @property
    def seconds(self) -> float:
        """Device-seconds of the whole cell: every seed's search, then its curve probes."""
        return self.seeds * self.seconds_per_threshold + self.curve_seconds


def _curve_cost(cell: Cell, spec: SweepSpec, ctx: ProbeContext, truths: list[float]) -> tuple[int, float]:
    """(probes, device-seconds) of the cell's curve probes: every seed at loads around the median alpha*."""
    n = spec.search.curve_points
    if n == 0:
        return 0, 0.0
    median_p = statistics.median(truths)
    alpha = median_p * math.log(median_p) / cell.d**2 if median_p > 1 else 0.0
    if alpha <= 0:
        return 0, 0.0
    loads = curve_loads(alpha, cell.d, n, spec.search.curve_span)
    mean = sum(statistics.fmean(ctx.probe_seconds(cell, p, t) for t in truths) for p in loads)
    return len(loads) * spec.seeds_of(cell), spec.seeds_of(cell) * mean


def plan_cell(cell: Cell, spec: SweepSpec, model: CostModel, share: int = 1) -> CellPlan:
    """Simulate the cell's searches (in rounds of the spec's width) and price every probe they visit."""
    width = spec.search.width
    ctx = ProbeContext.of(spec, model, share)
    guess = theory_guess(cell)
    truths = simulated_thresholds(guess, cell.d, SPREAD[cell.theory_kind])
    costs, counts, visited = [], [], []
    for p_true in truths:
        trace = search_trace(cell, spec, guess, p_true, width)
        costs.append(sum(ctx.probe_seconds(cell, p, p_true) for p, _ in trace))
        counts.append(len(trace))
        visited += [p for p, _ in trace]
    visited.sort()
    p_low, p_high = visited[int(0.05 * (len(visited) - 1))], visited[int(0.95 * (len(visited) - 1))]
    curve_n, curve_s = _curve_cost(cell, spec, ctx, truths)
    storage = ctx.storage_bytes
    held = competitor_bytes(cell.problem, p_high, cell.d, storage)
    if cell.solver == "adam" and cell.problem == "dp" and ctx.mode_at(cell, p_high) == "materialize" \
            and held > model.memory_bytes:
        raise InvalidInput(f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d}: mode 'materialize' "
                           f"holds {held / 2**30:.1f} GiB of competitors at p = {p_high}, more than the "
                           f"{model.device}'s {model.memory_bytes / 2**30:.1f} GiB (use mode 'auto' or 'regenerate')")
    p_guess = max(2, round(guess))
    return CellPlan(
        problem=cell.problem, solver=cell.solver, rho=cell.rho, d=cell.d, rank=cell.rank, p_theory=guess,
        p_low=p_low, p_high=p_high, mode=ctx.mode_at(cell, p_high) if cell.solver == "adam" else "-",
        competitor_bytes=held,
        probes_per_threshold=statistics.fmean(counts), seconds_per_probe=sum(costs) / max(1, sum(counts)),
        seconds_unsat_probe=ctx.seconds(cell, p_guess, False, ctx.max_steps if cell.solver == "adam" else 0),
        seconds_per_threshold=statistics.fmean(costs), curve_probes=curve_n, curve_seconds=curve_s,
        seeds=spec.seeds_of(cell))


def cell_cost(cell: Cell, spec: SweepSpec, model: CostModel) -> float:
    """Expected device-seconds of one seed's threshold search in `cell` (curve probes not included)."""
    return plan_cell(cell, spec, model).seconds_per_threshold


@dataclass(frozen=True)
class Plan:
    """A sweep's plan: per-cell costs, totals, and where the seconds came from."""

    device: str
    source: str
    cells: list[CellPlan]
    workers: int | None
    width: int
    share: int = 1  # actors per device: each probe holds 1/share of its device

    @property
    def device_seconds(self) -> float:
        return sum(c.seconds for c in self.cells)

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600.0

    @property
    def wall_seconds(self) -> float | None:
        """With workers (actors): the larger of total / devices and the longest single search (None without)."""
        if self.workers is None:
            return None
        longest = max((c.seconds_per_threshold for c in self.cells), default=0.0)
        return max(self.device_seconds * self.share / self.workers, longest * self.share)

    def to_dict(self) -> dict:
        """The plan as JSON-ready values (what `lamcap plan --json` prints)."""
        return {"device": self.device, "source": self.source, "workers": self.workers, "width": self.width,
                "share": self.share,
                "device_seconds": self.device_seconds, "device_hours": self.device_hours,
                "wall_seconds": self.wall_seconds,
                "cells": [{**asdict(c), "seconds": c.seconds} for c in self.cells]}


def plan_spec(spec: SweepSpec, model: CostModel, workers: int | None = None, share: int = 1) -> Plan:
    """Plan every cell of `spec` with `model`; `workers` (actors) adds a wall time; `share` actors per device."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers={workers!r} must be an integer >= 1")
    if isinstance(share, bool) or not isinstance(share, int) or share < 1:
        raise InvalidInput(f"share={share!r} (actors per device) must be an integer >= 1")
    width = spec.search.width
    cells = [plan_cell(cell, spec, model, share) for cell in spec.cells()]
    return Plan(device=model.device, source=model.source, cells=cells, workers=workers, width=width, share=share)
