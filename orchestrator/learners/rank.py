"""Ask/tell learner of the rank axis: which rank fraction rho to run next at one (problem, solver, d).

In the style of python-adaptive's Learner1D, on the integer ranks r = max(1, round(rho d)) of a rule's
[min, max]. Pure: no Ray, no files, no clocks. It works in rounds: `ask()` proposes a round of cells (the
first: `initial` ranks evenly spread; then `batch` ranks) and proposes nothing more until every cell of the
round is told. A round depends only on the set of results told before it, never on their order, so a
sweep whose cells finish in any order, or a resumed one, makes the same decisions.

Where to add a cell: where the interpolated median is least certain. The told cells give the median
alpha* per rank and its variance (from the seeds' spread, lamcap.orchestrator.learners.stats). Between two
neighbouring cells, the piecewise-linear interpolant of the medians misses a curve of second derivative c
by c h^2 t (1 - t) / 2 over a gap of width h (in rho): by up to |c| h^2 / 8 in alpha, the gap's score (a
midpoint cuts it by 4). c^2 is estimated from the parabolas through the gap's end points and their outer
neighbours (the larger of the two), discounted by the seeds' spread: max(0, c^2 - 4 Var(c)), so that a bend
within two standard deviations of the seed noise counts for nothing (c^2 - Var(c) alone, unbiased for one
gap, lets the largest of many noisy gaps win: the learner then chases noise). A floor of FLOOR |c|_max
keeps flat gaps from being starved (one is split once about 3 times wider than the most bent one), and
equal scores go to the wider gap, so on a curve lost in noise the learner fills in uniformly.
(Scoring by the integrated squared error, c^2 h^5, does as well on the theory's curves; benchmarks/adaptive.py.)
Pending cells cut gaps like told ones; a gap without a free integer rank inside is never proposed, so
no rank is run twice. The budget is `points` distinct ranks, initial ones included.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.base import AdaptiveLearner, Search, nan_for_none, row_alpha
from lamcap.orchestrator.learners.stats import finite, median_variance_factor, second_difference, spreads
from lamcap.orchestrator.spec import Cell
from lamcap.orchestrator.spec.adaptive_rules import RhoRule, rank_of

FLOOR = 0.1  # floor on |c|, relative to the largest |c| seen
NOISE_SIGMAS = 2.0  # a second difference within this many of its standard deviations counts as no bend


@dataclass(frozen=True)
class Gap:
    """Two neighbouring occupied ranks (told or pending) with a free rank between them, and its score."""

    lo: int
    hi: int
    curvature2: float | None  # the discounted c^2 used; None while fewer than three cells are known
    score: float  # the interpolant's largest possible miss |c| h^2 / 8 (alpha), or the width h when curvature2 is None

    def as_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "curvature2": self.curvature2, "score": self.score}


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


class RankLearner(AdaptiveLearner):
    """Chooses the rank fractions of one (problem, solver, d); see the module docstring for the rule."""

    kind = "rank"

    def __init__(self, rule: RhoRule, d: int, label: dict | None = None) -> None:
        if isinstance(d, bool) or not isinstance(d, int) or d < 2:
            raise InvalidInput(f"d={d!r} must be an integer >= 2")
        if not isinstance(rule, RhoRule):
            raise InvalidInput(f"rule={rule!r} must be a RhoRule")
        self.rule, self.d, self.label = rule, d, dict(label or {})
        self.r_lo, self.r_hi = rule.rank_range(d)
        self.budget = min(rule.points, self.r_hi - self.r_lo + 1)  # distinct ranks it may use
        self._told: dict[int, tuple[float, ...]] = {}
        self._pending: set[int] = set()
        self._new: list[dict] = []  # told since the last decision, in order
        self._rows: dict[float, dict[int, float]] = {}  # rho -> seed -> alpha*: a cell's rows until all are in
        self.decisions: list[dict] = []

    # ---- the learner contract (lamcap.orchestrator.learners.base) ---------------------------------
    @property
    def key(self) -> tuple:
        return (self.kind, self.label.get("problem"), self.label.get("solver"), self.d)

    @classmethod
    def key_of(cls, decision: dict) -> tuple:
        return (cls.kind, decision["problem"], decision["solver"], decision["d"])

    @classmethod
    def key_for(cls, cell: Cell) -> tuple:
        return (cls.kind, cell.problem, cell.solver, cell.d)

    def searches(self, points: list, seeds: int) -> list[Search]:
        """Every seed of the cell at each rank fraction asked."""
        problem, solver = self.label["problem"], self.label["solver"]
        return [(Cell(problem, solver, rho, self.d), s) for rho in points for s in range(seeds)]

    def chosen(self, decision: dict) -> list:
        return [self.rho_of(r) for r in decision["chosen_ranks"]]

    def told_in(self, decision: dict) -> list[tuple]:
        return [(row["rho"], [nan_for_none(a) for a in row["alpha_star"]]) for row in decision["told"]]

    def lookup(self, thresholds: dict[tuple, dict], seeds: int) -> Callable[[float], list[float] | None]:
        problem, solver = self.label["problem"], self.label["solver"]

        def cell_alphas(rho: float) -> list[float] | None:
            rows = [thresholds.get((problem, solver, float(rho), self.d, s)) for s in range(seeds)]
            return None if any(r is None for r in rows) else [row_alpha(r) for r in rows]
        return cell_alphas

    def observe(self, row: dict, seeds: int) -> bool:
        """A cell is told once every seed of it has a threshold row."""
        cell_rows = self._rows.setdefault(float(row["rho"]), {})
        cell_rows[int(row["seed"])] = row_alpha(row)
        if len(cell_rows) < seeds:
            return False
        del self._rows[float(row["rho"])]
        self.tell(float(row["rho"]), [cell_rows[s] for s in range(seeds)])
        return True

    # ---- state -------------------------------------------------------------------------------
    def rank_of(self, rho: float) -> int:
        return rank_of(rho, self.d)

    def rho_of(self, rank: int) -> float:
        """r / d, the rank fraction whose rank is exactly r."""
        return rank / self.d

    @property
    def pending(self) -> list[float]:
        """The rank fractions asked for and not yet told, ascending."""
        return [self.rho_of(r) for r in sorted(self._pending)]

    @property
    def told(self) -> dict[int, tuple[float, ...]]:
        """rank -> the per-seed alpha* told for it (NaN: a seed without a threshold)."""
        return dict(sorted(self._told.items()))

    @property
    def done(self) -> bool:
        """Nothing pending and nothing left to propose (budget spent, or no free rank in any gap)."""
        if self._pending or not self.decisions:
            return False
        occupied = set(self._told)
        return len(occupied) >= self.budget or not self._gaps(occupied)

    def curve(self) -> list[dict]:
        """The told cells with a finite median: rank, rho, n seeds, median alpha*, sd of the median."""
        groups = {r: (finite(v), self.d) for r, v in self._told.items() if finite(v)}
        sds = spreads(groups)
        return [{"rank": r, "rho": self.rho_of(r), "n": len(groups[r][0]), "median": statistics.median(groups[r][0]),
                 "sd": sds[r] * math.sqrt(median_variance_factor(len(groups[r][0])))} for r in sorted(groups)]

    # ---- tell --------------------------------------------------------------------------------
    def tell(self, rho: float, alphas: Sequence[float]) -> None:
        """Record a cell's per-seed alpha* (asked or not: a replay); the same result again is a no-op."""
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho <= 1:
            raise InvalidInput(f"rho={rho!r} must be a number in (0, 1]")
        rank = self.rank_of(rho)
        if not self.r_lo <= rank <= self.r_hi:
            raise InvalidInput(f"rho={rho!r} (rank {rank}) is outside the rule's ranks [{self.r_lo}, {self.r_hi}]")
        values = tuple(float(a) for a in alphas)
        if not values:
            raise InvalidInput(f"rho={rho!r}: no alpha* told (give one per seed, NaN for a seed without one)")
        if rank in self._told:
            if [_json_float(v) for v in self._told[rank]] != [_json_float(v) for v in values]:
                raise ValueError(f"rank {rank} told {values} after {self._told[rank]}: a cell is a pure function of"
                                 " its spec, so two results mean a bug")
            return
        self._told[rank] = values
        self._pending.discard(rank)
        self._new.append({"rank": rank, "rho": self.rho_of(rank), "alpha_star": [_json_float(v) for v in values]})

    # ---- ask ---------------------------------------------------------------------------------
    def ask(self, n: int | None = None) -> list[float]:
        """The next round's rank fractions (r / d), marked pending; [] while a round is pending or when done
        (a round is the rule's `initial` ranks, then its `batch`: n is not used).

        The first ask after the learner is done records a final decision saying why it stopped.
        """
        if self._pending:
            return []
        if self.done:
            if self.decisions[-1]["basis"] != "stop":
                self._record([], [], "stop")
            return []
        ranks = [r for r in self.rule.initial_ranks(self.d) if r not in self._told] if not self.decisions else []
        if ranks:
            self._record(ranks, [], "initial")
        else:
            ranks, candidates, basis = self._choose(self.rule.batch)
            self._record(ranks, candidates, basis)
        self._pending.update(ranks)
        return [self.rho_of(r) for r in ranks]

    def _choose(self, n: int) -> tuple[list[int], list[Gap], str]:
        """Up to n ranks, each the midpoint of the best-scored gap once the previous picks are pending."""
        occupied = set(self._told) | self._pending
        picks: list[int] = []
        candidates: list[Gap] = []
        basis = "width"
        while len(picks) < n and len(occupied) < self.budget:
            gaps = self._gaps(occupied)
            if not gaps:
                break
            if not picks:
                candidates = gaps
                basis = "width" if gaps[0].curvature2 is None else "curvature"
            best = max(gaps, key=lambda g: (g.score, g.hi - g.lo, -g.lo))
            picks.append((best.lo + best.hi) // 2)
            occupied.add(picks[-1])
        return picks, candidates, basis

    def _known(self) -> tuple[list[int], list[float], list[float]]:
        """Ranks with a finite median, their medians and the variances of those medians."""
        rows = self.curve()
        return [r["rank"] for r in rows], [r["median"] for r in rows], [r["sd"] ** 2 for r in rows]

    def _curvatures(self, xs: list[float], ys: list[float], vs: list[float]) -> list[float]:
        """Per interval between known cells: the larger discounted c^2 of its two parabolas, then the floor."""
        triples = [second_difference(xs[i - 1:i + 2], ys[i - 1:i + 2], vs[i - 1:i + 2]) for i in range(1, len(xs) - 1)]
        at_point = [max(c * c - NOISE_SIGMAS ** 2 * var, 0.0) for c, var in triples]  # [i - 1]: centred on known i
        per_interval = []
        for i in range(len(xs) - 1):  # interval (i, i + 1) uses the parabolas centred on i and i + 1
            around = [at_point[j - 1] for j in (i, i + 1) if 1 <= j <= len(xs) - 2]
            per_interval.append(max(around))
        floor = FLOOR ** 2 * max(per_interval, default=0.0)  # (FLOOR |c|_max)^2
        return [max(c2, floor) for c2 in per_interval]

    def _gaps(self, occupied: set[int]) -> list[Gap]:
        """Every gap between neighbouring occupied ranks with a free rank inside, scored, ascending."""
        cuts = sorted(occupied)
        ranks, ys, vs = self._known()
        xs = [self.rho_of(r) for r in ranks]
        curv = self._curvatures(xs, ys, vs) if len(ranks) >= 3 else None
        out = []
        for a, b in zip(cuts, cuts[1:]):
            if b - a < 2:
                continue
            h = (b - a) / self.d
            if curv is None:
                out.append(Gap(a, b, None, h))
                continue
            i = max(0, min(len(ranks) - 2, sum(1 for r in ranks if r <= a) - 1))  # the known interval holding (a, b)
            out.append(Gap(a, b, curv[i], math.sqrt(curv[i]) * h * h / 8.0))
        return out

    def _record(self, ranks: list[int], candidates: list[Gap], basis: str) -> None:
        reason = {"initial": "first round: evenly spaced from min to max",
                  "curvature": "the gap where the interpolant may miss the curve most",
                  "width": "the widest gap (fewer than three cells known)",
                  "stop": "budget spent" if len(self._told) >= self.budget else "no free rank left in any gap"}[basis]
        self.decisions.append({
            "learner": self.kind, **self.label, "d": self.d, "round": len(self.decisions), "basis": basis,
            "told": self._new, "curve": [{k: _json_float(v) if isinstance(v, float) else v for k, v in row.items()}
                                         for row in self.curve()],
            "candidates": [g.as_dict() for g in candidates], "chosen_ranks": list(ranks),
            "chosen_rhos": [self.rho_of(r) for r in ranks], "budget": self.budget, "reason": reason,
        })
        self._new = []
