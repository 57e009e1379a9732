"""The adaptive axis of a running sweep: which (cell, seed) searches exist, grown as thresholds arrive.

The scheduler's bookkeeping for `[adaptive.rho]` and `[adaptive.d]` (lamcap.orchestrator.spec.adaptive_rules);
no Ray, no files, no math of its own. One RankLearner per (problem, solver, d) for an adaptive rank axis,
one DimensionLearner per (problem, solver, rho) for an adaptive dimension axis. The scheduler tells every
threshold row; a rank learner is told a cell once all its seeds have rows, a dimension learner each seed's
row; then the learner is asked, and the cells (and seeds) it chooses come back as new searches, its
decisions as rows for the store's `decisions` table. An incomplete threshold (row `complete` False: a probe
that kept failing, or p_max still SAT) is told as NaN: an error is never a verdict, and a seed without a
threshold is no evidence for either side of the curve.

Resume: `resume` replays every learner from the stored thresholds (fast_forward) and checks the replay
against the stored decisions, refusing (InvalidInput, one line) on a mismatch rather than choosing anew.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.decisions import ReplayMismatch, check_replayed
from lamcap.orchestrator.learners.dimension import CostFn, DimensionLearner, SeedBatch
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.spec import Cell, SweepSpec

Search = tuple[Cell, int]  # (cell, seed)
Learner = RankLearner | DimensionLearner


def learner_key(decision_or_learner) -> tuple:
    """(kind, problem, solver, d or rho): the identity of one adaptive learner, from it or from a decision."""
    if isinstance(decision_or_learner, RankLearner):
        lrn = decision_or_learner
        return (lrn.kind, lrn.label["problem"], lrn.label["solver"], lrn.d)
    if isinstance(decision_or_learner, DimensionLearner):
        lrn = decision_or_learner
        return (lrn.kind, lrn.problem, lrn.solver, lrn.rho)
    dec = decision_or_learner
    at = dec["d"] if dec["learner"] == RankLearner.kind else float(dec["rho"])
    return (dec["learner"], dec["problem"], dec["solver"], at)


def _describe(key: tuple) -> str:
    kind, problem, solver, at = key
    return f"the {kind} learner of ({problem}, {solver}, {'d' if kind == RankLearner.kind else 'rho'}={at:g})"


def _alpha(row: dict) -> float:
    """A threshold row's alpha*, NaN when the search ended without one."""
    return float(row["alpha_star"]) if row.get("complete", True) and row["p_star"] >= 1 else math.nan


def possible_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell the sweep may ever run: the grid, or every rank / rung an adaptive learner may choose."""
    rule_rho, rule_d = spec.adaptive.rho, spec.adaptive.d
    if rule_rho is None and rule_d is None:
        return spec.cells()
    out = set()
    for problem in spec.problems:
        for solver in spec.solvers:
            for d in spec.ds_for(problem):
                if rule_rho is not None:
                    lo, hi = rule_rho.rank_range(d)
                    out.update(Cell(problem, solver, r / d, d) for r in range(lo, hi + 1))
                else:
                    out.update(Cell(problem, solver, rho, d) for rho in spec.rhos_for(solver)
                               if d in spec.ds_for(problem, solver, rho))
    return sorted(out)


def cells_to_check(spec: SweepSpec) -> list[Cell]:
    """The cells whose first probes are the largest the sweep may run, for the checks before work: the grid;
    for a rank axis its first round, which holds each d's largest rank (the largest guess of p*, as the
    capacity grows with rho, and the largest W); for a dimension axis every rung of the ladder."""
    return spec.cells() if spec.adaptive.d is None else possible_cells(spec)


def first_round_problems(spec: SweepSpec, cost: CostFn | None = None) -> list[str]:
    """A dimension learner whose budget cannot pay for two rungs of its first round runs nothing: say so."""
    if spec.adaptive.d is None:
        return []
    expansion = Expansion(spec, cost)
    expansion.start()
    return [f"adaptive.d.budget_device_hours={spec.adaptive.d.budget_device_hours!r}: {_describe(key)}"
            f" {lrn.decisions[0]['reason']}" for key, lrn in expansion.learners.items()
            if lrn.decisions[0]["basis"] == "stop"]


def max_searches(spec: SweepSpec) -> int:
    """The most (cell, seed) searches the sweep may hold: its grid, or what the rules allow at most."""
    rule_rho, rule_d = spec.adaptive.rho, spec.adaptive.d
    if rule_rho is not None:
        return sum(min(rule_rho.points, hi - lo + 1) * spec.seeds * len(spec.solvers)
                   for problem in spec.problems for d in spec.ds_for(problem)
                   for lo, hi in [rule_rho.rank_range(d)])
    if rule_d is not None:
        return sum(max(rule_d.max_seeds, spec.seeds) * len(spec.ds_for(p)) for p in spec.problems) \
            * len(spec.solvers) * len(spec.rhos)
    return sum(spec.seeds_of(cell) for cell in spec.cells())


class Expansion:
    """The adaptive learners of one sweep, the searches they asked for, and their decisions not yet stored."""

    def __init__(self, spec: SweepSpec, cost: CostFn | None = None) -> None:
        if not spec.adaptive:
            raise InvalidInput("Expansion needs a spec with [adaptive.rho] or [adaptive.d]")
        self.spec = spec
        if cost is None and spec.adaptive.d is not None:
            raise ValueError("an adaptive dimension axis needs its cost callable "
                             "(lamcap.orchestrator.planning.plan_cost.PlanCost)")
        self.cost_model = "" if spec.adaptive.d is None else getattr(
            cost, "name", f"{cost.__module__}.{cost.__qualname__}")
        self.learners: dict[tuple, Learner] = {}
        for problem in spec.problems:
            for solver in spec.solvers:
                if spec.adaptive.rho is not None:
                    for d in spec.ds_for(problem):
                        self._add(RankLearner(spec.adaptive.rho, d, {"problem": problem, "solver": solver}))
                else:
                    for rho in spec.rhos_for(solver):
                        self._add(DimensionLearner(spec.adaptive.d, cost, problem, solver, rho, spec.seeds,
                                                   ladder=spec.ds_for(problem, solver, rho)))
        self.searches: set[Search] = set()  # every (cell, seed) asked for so far
        self._rows: dict[Cell, dict[int, float]] = {}  # rank axis: alpha* per seed of cells not yet told whole
        self._handed = {key: 0 for key in self.learners}  # decisions already handed out (stored or taken)
        self._started = False

    def _add(self, learner: Learner) -> None:
        self.learners[learner_key(learner)] = learner

    # ---- the learners' choices as searches -------------------------------------------------------
    def _searches_of(self, key: tuple, chosen: list) -> list[Search]:
        _, problem, solver, at = key
        if key[0] == RankLearner.kind:
            return [(Cell(problem, solver, rho, at), s) for rho in chosen for s in range(self.spec.seeds)]
        return [(Cell(problem, solver, at, batch.d), s) for batch in chosen for s in batch.seeds]

    def _ask(self, key: tuple) -> list[Search]:
        new = [s for s in self._searches_of(key, self.learners[key].ask()) if s not in self.searches]
        self.searches.update(new)
        return new

    @property
    def started(self) -> bool:
        """Whether `start` or `resume` has run."""
        return self._started

    def start(self) -> list[Search]:
        """The first round of every learner (a fresh sweep); use `resume` for a store with thresholds."""
        return self.resume({}, [])

    def resume(self, thresholds: dict[tuple, dict], recorded: list[dict]) -> list[Search]:
        """Replay every learner from stored threshold rows (by threshold_key) and check the replay against the
        recorded decisions; return every search asked so far (stored ones included), sorted.

        InvalidInput, naming the learner and round, when the stored thresholds replay to other decisions.
        """
        if self._started:
            raise ValueError("an Expansion starts once (start or resume)")
        self._started = True
        by_learner: dict[tuple, list[dict]] = {key: [] for key in self.learners}
        for dec in recorded:
            key = learner_key(dec)
            if key not in by_learner:
                raise InvalidInput(f"the store records decisions of {_describe(key)}, which this spec has not:"
                                   " refusing to resume (use another --store)")
            by_learner[key].append(dec)
        for key, learner in self.learners.items():
            learner.fast_forward(self._lookup(key, thresholds))
            try:
                check_replayed(learner.decisions, by_learner[key], _describe(key))
            except ReplayMismatch as exc:
                raise InvalidInput(f"refusing to resume: {exc}; the code or its cost model changed since the store"
                                   " was written (use another --store)") from None
            self._handed[key] = len(by_learner[key])
            for i, dec in enumerate(learner.decisions):
                self.searches.update(self._searches_of(key, self._chosen_of(learner, i)))
        return sorted(self.searches)

    def _chosen_of(self, learner: Learner, i: int) -> list:
        """What decision i of a learner asked for, as `ask` returned it."""
        dec = learner.decisions[i]
        if isinstance(learner, RankLearner):
            return list(dec["chosen_rhos"])
        return [SeedBatch(c["d"], tuple(c["seeds"])) for c in dec["chosen"]]

    def _lookup(self, key: tuple, thresholds: dict[tuple, dict]) -> Callable:
        _, problem, solver, at = key
        if key[0] == RankLearner.kind:
            def cell_alphas(rho: float) -> list[float] | None:
                rows = [thresholds.get((problem, solver, float(rho), at, s)) for s in range(self.spec.seeds)]
                return None if any(r is None for r in rows) else [_alpha(r) for r in rows]
            return cell_alphas

        def seed_alpha(d: int, seed: int) -> float | None:
            row = thresholds.get((problem, solver, float(at), d, seed))
            return None if row is None else _alpha(row)
        return seed_alpha

    # ---- as thresholds arrive ----------------------------------------------------------------------
    def tell(self, row: dict) -> list[Search]:
        """One threshold row of a search of this sweep; the searches its learner now asks for (often none)."""
        cell = Cell(row["problem"], row["solver"], float(row["rho"]), int(row["d"]))
        if (cell, int(row["seed"])) not in self.searches:
            raise ValueError(f"threshold of {cell}, seed {row['seed']}: no adaptive learner asked for it")
        if self.spec.adaptive.rho is not None:
            key = (RankLearner.kind, cell.problem, cell.solver, cell.d)
            seeds = self._rows.setdefault(cell, {})
            seeds[int(row["seed"])] = _alpha(row)
            if len(seeds) < self.spec.seeds:
                return []
            del self._rows[cell]
            self.learners[key].tell(cell.rho, [seeds[s] for s in range(self.spec.seeds)])
        else:
            key = (DimensionLearner.kind, cell.problem, cell.solver, cell.rho)
            self.learners[key].tell(cell.d, int(row["seed"]), _alpha(row))
        return self._ask(key)

    def take_decisions(self) -> list[dict]:
        """Decisions made since the last call (or `resume`) that the store does not hold yet, in order."""
        out = []
        for key, learner in self.learners.items():
            out += learner.decisions[self._handed[key]:]
            self._handed[key] = len(learner.decisions)
        return out

    @property
    def decisions(self) -> list[dict]:
        """Every decision of every learner so far, learner by learner, in round order."""
        return [dec for learner in self.learners.values() for dec in learner.decisions]

    @property
    def finished(self) -> bool:
        """Every learner is done and has recorded why it stopped: nothing pending, nothing left to ask."""
        return all(lrn.done and lrn.decisions and lrn.decisions[-1]["basis"] == "stop"
                   for lrn in self.learners.values())
