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

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.base import AdaptiveLearner, Search
from lamcap.orchestrator.learners.decisions import ReplayMismatch, check_replayed, learner_key
from lamcap.orchestrator.learners.dimension import CostFn, DimensionLearner
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.spec import Cell, SweepSpec


def _describe(key: tuple) -> str:
    kind, problem, solver, at = key
    return f"the {kind} learner of ({problem}, {solver}, {'d' if kind == RankLearner.kind else 'rho'}={at:g})"


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
        self.kind: type[AdaptiveLearner] = RankLearner if spec.adaptive.rho is not None else DimensionLearner
        self.learners: dict[tuple, AdaptiveLearner] = {}
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
        self._handed = {key: 0 for key in self.learners}  # decisions already handed out (stored or taken)
        self._started = False

    def _add(self, learner: AdaptiveLearner) -> None:
        self.learners[learner.key] = learner

    def _ask(self, key: tuple) -> list[Search]:
        learner = self.learners[key]
        new = [s for s in learner.searches(learner.points(learner.ask()), self.spec.seeds) if s not in self.searches]
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
            learner.fast_forward(learner.lookup(thresholds, self.spec.seeds))
            try:
                check_replayed(learner, by_learner[key], _describe(key))
            except ReplayMismatch as exc:
                raise InvalidInput(f"refusing to resume: {exc}; the code or its cost model changed since the store"
                                   " was written (use another --store)") from None
            self._handed[key] = len(by_learner[key])
            for dec in learner.decisions:
                self.searches.update(learner.searches(learner.chosen(dec), self.spec.seeds))
        return sorted(self.searches)

    # ---- as thresholds arrive ----------------------------------------------------------------------
    def tell(self, row: dict) -> list[Search]:
        """One threshold row of a search of this sweep; the searches its learner now asks for (often none).
        An incomplete row is told as NaN: a seed without a threshold is no evidence for either side."""
        cell = Cell(row["problem"], row["solver"], float(row["rho"]), int(row["d"]))
        if (cell, int(row["seed"])) not in self.searches:
            raise ValueError(f"threshold of {cell}, seed {row['seed']}: no adaptive learner asked for it")
        key = self.kind.key_for(cell)
        if not self.learners[key].observe(row, self.spec.seeds):
            return []
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
