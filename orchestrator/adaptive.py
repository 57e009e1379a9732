"""Adaptive rank and dimension axes of a sweep: the rules, the two learners, replay and the decisions table.

Pure (no Ray, no torch, no files, no clocks). The pieces live in their own modules:
  * adaptive_rules: `[adaptive.rho]` (RhoRule) and `[adaptive.d]` (DimensionRule) of a spec;
  * adaptive_rank: RankLearner, which rank fraction to run next at one (problem, solver, d);
  * adaptive_dimension: DimensionLearner, which d and how many seeds next at one (problem, solver, rho);
  * adaptive_cost: proxy_cost, a simple stated cost (benchmarks; sweeps use expansion.PlanCost);
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
           "SeedBatch", "added_cells", "check_replayed", "decision_row", "proxy_cost", "replay"]

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


def check_replayed(replayed: list[dict], recorded: list[dict], what: str) -> None:
    """Raise ReplayMismatch unless the recorded decisions of one learner (`what` names it) are the first
    decisions of its replay, round by round: same round, basis and chosen cells."""
    for i, old in enumerate(recorded):
        new = replayed[i] if i < len(replayed) else None
        if new is None or (new["round"], new["basis"], _chosen(new)) != (old["round"], old["basis"], _chosen(old)):
            got = f"{new['basis']} {_chosen(new)}" if new is not None else "nothing (its thresholds are not stored)"
            raise ReplayMismatch(f"{what}, round {old['round']}: the store recorded {old['basis']} {_chosen(old)},"
                                 f" the stored thresholds replay to {got}")


BASIS_TOKENS = {"width per device-second": "width_per_device_second"}  # flag_meanings hold no spaces


def decision_row(decision: dict) -> dict:
    """The flat row of the store's `decisions` table for one decision dict (docs/STORE.md); NaN / -1 where a
    field belongs to the other learner."""
    nan = math.nan
    rank = decision["learner"] == RankLearner.kind
    row = {"learner": decision["learner"], "problem": decision["problem"], "solver": decision["solver"],
           "d": decision["d"] if rank else -1, "rho": nan if rank else decision["rho"], "round": decision["round"],
           "basis": BASIS_TOKENS.get(decision["basis"], decision["basis"])}
    if rank:
        scores = [g["score"] for g in decision["candidates"]]
        return {**row, "n_chosen": len(decision["chosen_ranks"]), "n_evidence": len(decision["curve"]),
                "gap_score": max(scores) if scores and decision["basis"] != "initial" else nan,
                **dict.fromkeys(("alpha_inf", "width", "predicted_width", "target", "spent_seconds",
                                 "added_seconds", "budget_seconds"), nan)}
    return {**row, "n_chosen": sum(len(c["seeds"]) for c in decision["chosen"]),
            "n_evidence": sum(r["n"] for r in decision["rungs"]), "gap_score": nan,
            "alpha_inf": _nan(decision["alpha_inf"]), "width": _nan(decision["width"]),
            "predicted_width": _nan(decision["predicted_width"]), "target": decision["target"],
            "spent_seconds": decision["committed_seconds"],
            "added_seconds": sum(c["cost"] for c in decision["chosen"]), "budget_seconds": decision["budget_seconds"]}


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
