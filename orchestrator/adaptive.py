"""Adaptive rank and dimension axes of a sweep: the rules, the two learners, replay and the decisions table.

Pure (no Ray, no torch, no files, no clocks). The pieces live in their own modules:
  * adaptive_rules: `[adaptive.rho]` (RhoRule) and `[adaptive.d]` (DimensionRule) of a spec;
  * adaptive_rank: RankLearner, which rank fraction to run next at one (problem, solver, d);
  * adaptive_dimension: DimensionLearner, which d and how many seeds next at one (problem, solver, rho);
  * adaptive_cost: proxy_cost, the stated stand-in for `lamcap plan`'s cost model;
  * adaptive_stats: the statistics both decide on.

Both learners work in rounds that depend only on the set of results told before them, and record
every decision as a plain JSON-able dict (what they were told since the previous decision, the evidence,
the scores compared, what they chose and why). A resumed sweep rebuilds a learner with
`learner.fast_forward(lookup)` from its stored thresholds; `replay(learner, decisions)` re-tells recorded
decisions in their order and checks that the learner chooses the same again.
"""
from __future__ import annotations

import math
from typing import Union

from lamcap.orchestrator.adaptive_cost import proxy_cost
from lamcap.orchestrator.adaptive_dimension import DimensionLearner, SeedBatch
from lamcap.orchestrator.adaptive_rank import RankLearner
from lamcap.orchestrator.adaptive_rules import AdaptiveRules, DimensionRule, RhoRule

__all__ = ["AdaptiveRules", "DimensionLearner", "DimensionRule", "RankLearner", "ReplayMismatch", "RhoRule",
           "SeedBatch", "added_cells", "proxy_cost", "replay"]

Learner = Union[RankLearner, DimensionLearner]


class ReplayMismatch(ValueError):
    """A learner told the recorded results chose differently from the record (another code version?)."""


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _tell_recorded(learner: Learner, told: list[dict]) -> None:
    for row in told:
        if isinstance(learner, RankLearner):
            learner.tell(row["rho"], [_nan(a) for a in row["alpha_star"]])
        else:
            learner.tell(row["d"], row["seed"], _nan(row["alpha_star"]))


def _chosen(decision: dict) -> list:
    if decision["learner"] == RankLearner.kind:
        return list(decision["chosen_ranks"])
    return [(c["d"], list(c["seeds"])) for c in decision["chosen"]]


def replay(learner: Learner, decisions: list[dict]) -> Learner:
    """Tell a fresh learner each recorded decision's results, in order, ask, and check it chooses the same.

    Returns the learner, positioned after the last recorded decision (its chosen cells pending).
    Raises ReplayMismatch naming the first round that differs.
    """
    if learner.decisions:
        raise ValueError("replay needs a fresh learner (it has decisions already)")
    for recorded in decisions:
        _tell_recorded(learner, recorded["told"])
        learner.ask()
        mine = learner.decisions[-1] if learner.decisions else None
        if mine is None or mine["round"] != recorded["round"] or _chosen(mine) != _chosen(recorded):
            raise ReplayMismatch(f"round {recorded['round']}: recorded {_chosen(recorded)}, replayed"
                                 f" {_chosen(mine) if mine else 'nothing'}")
    return learner


def added_cells(decisions: list[dict]) -> list[dict]:
    """One row per cell a rank learner chose: problem, solver, d, rank, rho, round, order (0: the first round,
    then 1, 2, ... in the order the learner added them) and basis; the tidy table the adaptive figure reads."""
    rows, order = [], {}
    for dec in decisions:
        if dec["learner"] != RankLearner.kind:
            continue
        key = (dec.get("problem"), dec.get("solver"), dec["d"])
        for rank, rho in zip(dec["chosen_ranks"], dec["chosen_rhos"]):
            if dec["basis"] == "initial":
                n = 0
            else:
                order[key] = order.get(key, 0) + 1
                n = order[key]
            rows.append({"problem": key[0], "solver": key[1], "d": dec["d"], "rank": rank, "rho": rho,
                         "round": dec["round"], "order": n, "basis": dec["basis"]})
    return rows
