"""The one contract every learner keeps, in python-adaptive's form: `ask(n)` proposes points and marks them
pending, `tell(point, result)` records one, `done` says nothing is left to learn.

Learners are pure (no Ray, no files, no clocks) and propose from what they were told and what is pending only,
so a learner rebuilt from a store proposes what the interrupted one would have (`fast_forward`). The adaptive
learners (rank and dimension axes) choose cells of a sweep: `AdaptiveLearner` adds what the expansion needs to
drive either kind alike: their identity, the (cell, seed) searches a point stands for, and how a threshold row
or a stored decision translates into points and results.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from typing import Any

from lamcap.orchestrator.spec import Cell

Search = tuple[Cell, int]  # (cell, seed): one threshold search


def row_alpha(row: dict) -> float:
    """A threshold row's alpha*, NaN when its search ended without one (an error is never a verdict)."""
    return float(row["alpha_star"]) if row.get("complete", True) and row["p_star"] >= 1 else math.nan


def nan_for_none(value: float | None) -> float:
    return math.nan if value is None else value


class Learner(ABC):
    """Ask for points, tell their results."""

    kind: str

    @abstractmethod
    def ask(self, n: int | None = None) -> list:
        """Up to n new points (None: the learner's own round), marked pending; [] when nothing is to run now."""

    @abstractmethod
    def tell(self, point: Any, result: Any) -> None:
        """Record a point's result (asked or not: a replay); the same result again is a no-op."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """Nothing pending and nothing left to propose."""

    @property
    @abstractmethod
    def pending(self) -> Collection:
        """The points asked for and not yet told."""

    def fast_forward(self, lookup: Callable[[Any], Any | None]) -> list:
        """Replay the rounds whose results are known already (lookup(point): the result, or None when it is not);
        return the points still to run. The same results give the same rounds as the run that chose them."""
        while True:
            asked = self.points(self.ask()) or list(self.pending)
            if not asked:
                return []
            missing = []
            for point in asked:
                result = lookup(point)
                if result is None:
                    missing.append(point)
                else:
                    self.tell(point, result)
            if missing:
                return missing

    def points(self, asked: list) -> list:
        """The points an `ask` returned, one per `tell` (a learner whose asks are batches flattens them)."""
        return asked


class AdaptiveLearner(Learner):
    """A learner that chooses cells of a sweep and records every decision (a JSON-able dict) it takes."""

    decisions: list[dict]

    @property
    @abstractmethod
    def key(self) -> tuple:
        """(kind, problem, solver, d or rho): which learner of a sweep this is."""

    @classmethod
    @abstractmethod
    def key_of(cls, decision: dict) -> tuple:
        """The key of the learner that took a recorded decision."""

    @classmethod
    @abstractmethod
    def key_for(cls, cell: Cell) -> tuple:
        """The key of the learner that chooses `cell`."""

    @abstractmethod
    def searches(self, points: list, seeds: int) -> list[Search]:
        """The threshold searches the points of an ask stand for (`seeds`: the sweep's seeds per cell)."""

    @abstractmethod
    def chosen(self, decision: dict) -> list:
        """What a recorded decision of this kind asked for, comparable across a replay."""

    @abstractmethod
    def told_in(self, decision: dict) -> list[tuple[Any, Any]]:
        """The (point, result) pairs a recorded decision was told before it was taken."""

    @abstractmethod
    def lookup(self, thresholds: dict[tuple, dict], seeds: int) -> Callable[[Any], Any | None]:
        """fast_forward's lookup from stored threshold rows (by threshold key)."""

    @abstractmethod
    def observe(self, row: dict, seeds: int) -> bool:
        """Tell what one threshold row of a search it asked for says (a rank learner waits for a cell's every
        seed); whether anything was told."""
