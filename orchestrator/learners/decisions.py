"""The adaptive learners' decisions: replaying them from stored thresholds, and their rows in the store.

Pure (no Ray, no torch, no files, no clocks). The rules are lamcap.orchestrator.spec.adaptive_rules, the
learners lamcap.orchestrator.learners.rank and .dimension, the statistics they decide on .stats.

Both learners work in rounds that depend only on the set of results told before them, and record
every decision as a plain JSON-able dict (what they were told since the previous decision, the evidence,
the scores compared, what they chose and why). A resumed sweep rebuilds a learner with
`learner.fast_forward(lookup)` from its stored thresholds; `replay(learner, decisions)` re-tells recorded
decisions in their order and checks that the learner chooses the same again.
"""
from __future__ import annotations

import math

from lamcap.orchestrator.learners.base import AdaptiveLearner
from lamcap.orchestrator.learners.dimension import DimensionLearner
from lamcap.orchestrator.learners.rank import RankLearner

KINDS: dict[str, type[AdaptiveLearner]] = {RankLearner.kind: RankLearner, DimensionLearner.kind: DimensionLearner}


class ReplayMismatch(ValueError):
    """A learner told the recorded results chose differently from the record (another code version?)."""


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def learner_key(decision: dict) -> tuple:
    """(kind, problem, solver, d or rho): the identity of the learner that took a recorded decision."""
    return KINDS[decision["learner"]].key_of(decision)


def replay(learner: AdaptiveLearner, decisions: list[dict]) -> AdaptiveLearner:
    """Tell a fresh learner each recorded decision's results, in order, ask, and check it chooses the same.

    Returns the learner, positioned after the last recorded decision (its chosen cells pending).
    Raises ReplayMismatch naming the first round that differs.
    """
    if learner.decisions:
        raise ValueError("replay needs a fresh learner (it has decisions already)")
    for recorded in decisions:
        for point, result in learner.told_in(recorded):
            learner.tell(point, result)
        learner.ask()
        mine = learner.decisions[-1] if learner.decisions else None
        if mine is None or mine["round"] != recorded["round"] or learner.chosen(mine) != learner.chosen(recorded):
            raise ReplayMismatch(f"round {recorded['round']}: recorded {learner.chosen(recorded)}, replayed"
                                 f" {learner.chosen(mine) if mine else 'nothing'}")
    return learner


def check_replayed(learner: AdaptiveLearner, recorded: list[dict], what: str) -> None:
    """Raise ReplayMismatch unless the recorded decisions of one learner (`what` names it) are the first
    decisions of its replay, round by round: same round, basis and chosen cells."""
    replayed = learner.decisions
    for i, old in enumerate(recorded):
        new = replayed[i] if i < len(replayed) else None
        same = new is not None and (new["round"], new["basis"], learner.chosen(new)) == \
            (old["round"], old["basis"], learner.chosen(old))
        if not same:
            got = (f"{new['basis']} {learner.chosen(new)}" if new is not None
                   else "nothing (its thresholds are not stored)")
            raise ReplayMismatch(f"{what}, round {old['round']}: the store recorded {old['basis']} "
                                 f"{learner.chosen(old)}, the stored thresholds replay to {got}")


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
