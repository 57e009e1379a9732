"""Tables read off an adaptive sweep's decision log (the store's `decisions` group, docs/STORE.md)."""
from __future__ import annotations


def added_cells(decisions: list[dict]) -> list[dict]:
    """One row per cell a rank learner chose: problem, solver, d, rank, rho, round, order (0: the first round,
    then 1, 2, ... in the order the learner added them) and basis; the tidy table the adaptive figure reads."""
    rows, order = [], {}
    for dec in decisions:
        if dec["learner"] != "rank":
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
