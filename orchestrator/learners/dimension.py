"""Ask/tell learner of the dimension axis: which d to run next, and how many seeds, at one (problem, solver, rho).

Pure: no Ray, no files, no clocks. The goal is the finite-size fit alpha*(d) = alpha_inf + a / ln d that
lamcap.analysis.scaling makes (an unweighted least-squares line through the per-d median alpha* against
x = 1 / ln d) over the rule's ladder: its alpha_inf interval should become narrower than the rule's
`target` for the fewest device-seconds, and the device-seconds committed must never exceed the budget.

Why every rung. The law is only asymptotic: on the finite-size theory's own curve, a line through
d = 8, 12, 16 extrapolates to alpha_inf = 0.76, through d = 8 .. 128 to 0.66, through 64 .. 1024 to 0.55
(the limit is 0.5). A fit is only defined with its rungs, so the learner keeps the user's: every rung the
budget reaches gets at least one seed in the first round, and the learner decides how many more each gets.
The interval below is the sampling interval of that fit; it does not include the law's misfit.

The interval. With independent medians of variances v_d = f(n_d) s_d^2 (n_d seeds of spread s_d;
f in lamcap.orchestrator.learners.stats), the intercept of the unweighted line has a variance
sum_d w_d^2 v_d that depends only on where the seeds are, not on their values; the interval is
alpha_inf +- z sd (z = 1.96 at level 0.95), its width 2 z sd. So the effect of any candidate allocation can
be predicted before it runs, from the seed spreads told so far (a rung not yet run takes the spread of the
nearest rung that has, in ladder order).

Rounds. `ask()` proposes a round of seed batches and proposes nothing more until all of them are told.
The first round runs `initial_seeds` seeds at each of the `start` smallest rungs and one seed at every
other rung, smallest first, up to the first rung the budget cannot pay for (that rung and those above it
are out of reach and left out of the fit). Each later round is
planned greedily, one move at a time, up to `seeds_per_round` seeds: a move adds k = 1, 2, 4, ... seeds at
one rung, and the move taken is the one whose predicted width reduction per device-second (the cost
callable's increment) is largest among those that keep the committed cost within the budget. A round
depends only on the set of results told before it, never on their order, so an interrupted and resumed
sweep makes the same decisions. The learner is done when the width is at most `target`, or when no
affordable move narrows the interval. Costs come only from the cost callable, never from clocks, so that
decisions stay a pure function of the thresholds (measured timings would differ on a rerun).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.base import AdaptiveLearner, Search, nan_for_none, row_alpha
from lamcap.orchestrator.learners.stats import finite, intercept_sd, median_variance_factor, spreads, z_value
from lamcap.orchestrator.spec import Cell
from lamcap.orchestrator.spec.adaptive_rules import DimensionRule

CostFn = Callable[[str, str, float, int, int], float]  # cost(problem, solver, rho, d, seeds) -> device-seconds


@dataclass(frozen=True)
class SeedBatch:
    """Seeds to run at one dimension d (one threshold search each)."""

    d: int
    seeds: tuple[int, ...]


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


class DimensionLearner(AdaptiveLearner):
    """Chooses the dimensions and seed counts of one (problem, solver, rho); see the module docstring."""

    kind = "dimension"

    def __init__(self, rule: DimensionRule, cost: CostFn, problem: str, solver: str, rho: float,
                 initial_seeds: int, ladder: Sequence[int] | None = None) -> None:
        if not isinstance(rule, DimensionRule):
            raise InvalidInput(f"rule={rule!r} must be a DimensionRule")
        if isinstance(initial_seeds, bool) or not isinstance(initial_seeds, int) or initial_seeds < 2:
            raise InvalidInput(f"initial_seeds={initial_seeds!r} must be an integer >= 2 (the spread needs two)")
        self.ladder = tuple(sorted(ladder)) if ladder is not None else rule.ladder
        if len(self.ladder) < 2 or not set(self.ladder) <= set(rule.ladder):
            raise InvalidInput(f"ladder={list(self.ladder)} must hold at least two rungs of the rule's"
                               f" {list(rule.ladder)}")
        self.rule, self.cost = rule, cost
        self.problem, self.solver, self.rho, self.initial_seeds = problem, solver, float(rho), initial_seeds
        self._told: dict[tuple[int, int], float] = {}
        self._by_rung: dict[int, dict[int, float]] = {d: {} for d in self.ladder}  # d -> seed -> alpha*
        self._spread_cache: dict[int, float] | None = None  # cleared by tell
        self._asked = {d: 0 for d in self.ladder}  # seeds 0 .. n-1 asked (or told) per rung
        self._pending: set[tuple[int, int]] = set()
        self.committed_seconds = 0.0  # the cost model's device-seconds of every batch asked
        self._new: list[dict] = []
        self.decisions: list[dict] = []
        self._z = z_value(rule.level)
        self.rungs: tuple[int, ...] = self.ladder  # the rungs of the fit: those the first round could pay for

    # ---- the learner contract (lamcap.orchestrator.learners.base) ---------------------------------
    @property
    def key(self) -> tuple:
        return (self.kind, self.problem, self.solver, self.rho)

    @classmethod
    def key_of(cls, decision: dict) -> tuple:
        return (cls.kind, decision["problem"], decision["solver"], float(decision["rho"]))

    @classmethod
    def key_for(cls, cell: Cell) -> tuple:
        return (cls.kind, cell.problem, cell.solver, float(cell.rho))

    def points(self, asked: list) -> list[tuple[int, int]]:
        """The (d, seed) of every seed of the batches asked."""
        return [(b.d, s) for b in asked for s in b.seeds]

    def searches(self, points: list, seeds: int) -> list[Search]:
        return [(Cell(self.problem, self.solver, self.rho, d), s) for d, s in points]

    def chosen(self, decision: dict) -> list:
        return [(c["d"], s) for c in decision["chosen"] for s in c["seeds"]]

    def told_in(self, decision: dict) -> list[tuple]:
        return [((row["d"], row["seed"]), nan_for_none(row["alpha_star"])) for row in decision["told"]]

    def lookup(self, thresholds: dict[tuple, dict], seeds: int) -> Callable[[tuple[int, int]], float | None]:
        def seed_alpha(point: tuple[int, int]) -> float | None:
            row = thresholds.get((self.problem, self.solver, self.rho, point[0], point[1]))
            return None if row is None else row_alpha(row)
        return seed_alpha

    def observe(self, row: dict, seeds: int) -> bool:
        self.tell((int(row["d"]), int(row["seed"])), row_alpha(row))
        return True

    # ---- state -------------------------------------------------------------------------------
    @property
    def pending(self) -> list[tuple[int, int]]:
        """(d, seed) asked for and not yet told, ascending."""
        return sorted(self._pending)

    @property
    def told(self) -> dict[tuple[int, int], float]:
        """(d, seed) -> alpha* (NaN: that seed's search found no threshold)."""
        return dict(sorted(self._told.items()))

    def values(self, d: int) -> list[float]:
        """The finite alpha* told at rung d, by seed."""
        return finite([v for _, v in sorted(self._by_rung[d].items())])

    def _spreads(self) -> dict[int, float]:
        """Seed spread per rung: measured (shrunk, floored) where told, else the nearest measured rung's."""
        if self._spread_cache is None:
            self._spread_cache = self._measure_spreads()
        return self._spread_cache

    def _measure_spreads(self) -> dict[int, float]:
        measured = spreads({d: (self.values(d), d) for d in self.ladder if self.values(d)})
        out = {}
        for i, d in enumerate(self.ladder):
            near = sorted((abs(i - j), -e) for j, e in enumerate(self.ladder) if e in measured)
            out[d] = measured[d] if d in measured else (measured[-near[0][1]] if near else math.nan)
        return out

    def _width(self, counts: dict[int, int], sd: dict[int, float]) -> float:
        """Predicted interval width of alpha_inf with counts[d] seeds at each rung."""
        rungs = [d for d in self.ladder if counts.get(d, 0) > 0]
        xs = [1.0 / math.log(d) for d in rungs]
        vs = [median_variance_factor(counts[d]) * sd[d] ** 2 for d in rungs]
        return 2.0 * self._z * intercept_sd(xs, vs)

    def width(self) -> float:
        """The alpha_inf interval width (hi - lo) from the thresholds told so far; inf below two rungs."""
        if not any(self.values(d) for d in self.ladder):
            return math.inf
        return self._width({d: len(self.values(d)) for d in self.ladder}, self._spreads())

    def alpha_inf(self) -> float:
        """The fit's alpha_inf from the medians told so far (NaN below two rungs)."""
        rungs = [d for d in self.ladder if self.values(d)]
        if len(rungs) < 2:
            return math.nan
        xs = [1.0 / math.log(d) for d in rungs]
        ys = [statistics.median(self.values(d)) for d in rungs]
        xbar, ybar = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - xbar) * (y - ybar) for x, y in zip(xs, ys)) / sum((x - xbar) ** 2 for x in xs)
        return ybar - slope * xbar

    @property
    def budget_seconds(self) -> float:
        return self.rule.budget_seconds

    @property
    def done(self) -> bool:
        """Nothing pending and nothing left to do: the target is reached or no affordable move narrows it."""
        if self._pending or not self.decisions:
            return False
        return not self._plan()[0]

    # ---- tell --------------------------------------------------------------------------------
    def tell(self, point: tuple[int, int], alpha_star: float) -> None:
        """Record one seed's alpha* at point (d, seed) (NaN: no threshold); asked or not (a replay); a repeat is a
        no-op."""
        d, seed = point
        if d not in self._asked:
            raise InvalidInput(f"d={d!r} is not a rung of the ladder {list(self.ladder)}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidInput(f"seed={seed!r} must be an integer >= 0")
        value = float(alpha_star)
        if (d, seed) in self._told:
            if _json_float(self._told[d, seed]) != _json_float(value):
                raise ValueError(f"d={d}, seed={seed} told {value} after {self._told[d, seed]}: a threshold is a"
                                 " pure function of its spec, so two values mean a bug")
            return
        self._told[d, seed] = value
        self._by_rung[d][seed] = value
        self._spread_cache = None
        self._pending.discard((d, seed))
        self._asked[d] = max(self._asked[d], seed + 1)
        self._new.append({"d": d, "seed": seed, "alpha_star": _json_float(value)})

    # ---- ask ---------------------------------------------------------------------------------
    def _increment(self, d: int, before: int, k: int) -> float:
        """Device-seconds of growing this round's batch at d from `before` to `before + k` seeds."""
        total = self._batch_cost(d, before + k)
        return total - (self._batch_cost(d, before) if before else 0.0)

    def _batch_cost(self, d: int, seeds: int) -> float:
        seconds = self.cost(self.problem, self.solver, self.rho, d, seeds)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ValueError(f"cost({self.problem!r}, {self.solver!r}, {self.rho}, {d}, {seeds}) = {seconds!r}:"
                             " a cost must be a positive finite number of device-seconds")
        return float(seconds)

    def _initial_plan(self) -> dict[int, int]:
        """`initial_seeds` at the `start` smallest rungs, one seed at the others, smallest first, within budget."""
        plan, spent = {}, 0.0
        for i, d in enumerate(self.ladder):
            seeds = self.initial_seeds if i < self.rule.n_start else 1
            extra = self._batch_cost(d, seeds)
            if self.committed_seconds + spent + extra > self.budget_seconds:
                break
            plan[d], spent = seeds, spent + extra
        return plan

    def _moves(self, counts: dict[int, int], planned: dict[int, int], spent: float, width: float,
               sd: dict[int, float]) -> list[dict]:
        """Every affordable move (k seeds at rung d) with its predicted width, cost and gain per device-second."""
        left = self.rule.seeds_per_round - sum(planned.values())
        out = []
        for d in self.rungs:
            room = min(left, self.rule.max_seeds - self._asked[d] - planned.get(d, 0))
            k = 1
            while k <= room:
                extra = self._increment(d, planned.get(d, 0), k)
                if self.committed_seconds + spent + extra <= self.budget_seconds:
                    new = self._width({**counts, d: counts.get(d, 0) + k}, sd)
                    gain = (width - new) / extra if math.isfinite(width) else (math.inf if math.isfinite(new) else 0.0)
                    out.append({"d": d, "k": k, "width": new, "cost": extra, "gain": gain})
                k *= 2
        return out

    def _plan(self) -> tuple[dict[int, int], list[dict], float, str]:
        """(seeds per rung, the moves compared at each step, predicted width, why the plan ends) for the next round."""
        sd = self._spreads()
        counts = {d: len(self.values(d)) for d in self.ladder}
        if not any(counts.values()):
            return {}, [], math.inf, "no finite threshold at any rung: nothing to fit"
        width, planned, spent, steps = self._width(counts, sd), {}, 0.0, []
        why = "seeds_per_round reached"
        while sum(planned.values()) < self.rule.seeds_per_round:
            if width <= self.rule.target:
                why = "target reached"
                break
            moves = self._moves(counts, planned, spent, width, sd)
            useful = [m for m in moves if m["gain"] > 0]
            if not useful:
                why = "no affordable move narrows the interval" if moves else "no move fits the budget and max_seeds"
                break
            best = max(useful, key=lambda m: (m["gain"], -m["d"], -m["k"]))
            steps.append({"moves": [{k: _json_float(v) if isinstance(v, float) else v for k, v in m.items()}
                                    for m in moves], "chosen": {"d": best["d"], "k": best["k"]}})
            planned[best["d"]] = planned.get(best["d"], 0) + best["k"]
            counts[best["d"]] += best["k"]
            spent += best["cost"]
            width = best["width"]
        return planned, steps, width, why

    def ask(self, n: int | None = None) -> list[SeedBatch]:
        """The next round's seed batches, marked pending; [] while a round is pending or when done (a round is
        what the greedy plan adds, up to the rule's seeds_per_round: n is not used).

        The first ask after the learner is done records a final decision saying why it stopped.
        """
        if self._pending:
            return []
        if not self.decisions:
            plan, steps, predicted, why = self._initial_plan(), [], math.nan, "first round"
            self.rungs = tuple(d for d in self.ladder if d in plan)
            if len(self.rungs) < 2:
                plan, why = {}, f"the budget pays for {len(self.rungs)} rung(s) of the first round: a fit needs two"
            elif self.rungs != self.ladder:
                why += f"; rungs {list(self.ladder[len(self.rungs):])} are beyond the budget"
        else:
            plan, steps, predicted, why = self._plan()
            if not plan and self.decisions[-1]["basis"] == "stop":
                return []
        batches = [SeedBatch(d, tuple(range(self._asked[d], self._asked[d] + k))) for d, k in sorted(plan.items())]
        costs = [self._batch_cost(b.d, len(b.seeds)) for b in batches]
        basis = "stop" if not batches else ("initial" if not self.decisions else "width per device-second")
        self._record(batches, costs, steps, predicted, basis, why)
        for batch, seconds in zip(batches, costs):
            self._asked[batch.d] += len(batch.seeds)
            self._pending.update((batch.d, s) for s in batch.seeds)
            self.committed_seconds += seconds
        return batches

    def _record(self, batches: list[SeedBatch], costs: list[float], steps: list[dict], predicted: float,
                basis: str, why: str) -> None:
        sd = self._spreads()
        rungs = [{"d": d, "n": len(self.values(d)), "median": statistics.median(self.values(d)), "spread": sd[d]}
                 for d in self.ladder if self.values(d)]
        self.decisions.append({
            "learner": self.kind, "problem": self.problem, "solver": self.solver, "rho": self.rho,
            "round": len(self.decisions), "basis": basis, "told": self._new, "rungs": rungs,
            "width": _json_float(self.width()), "alpha_inf": _json_float(self.alpha_inf()), "target": self.rule.target,
            "committed_seconds": self.committed_seconds, "budget_seconds": self.budget_seconds, "steps": steps,
            "chosen": [{"d": b.d, "seeds": list(b.seeds), "cost": c} for b, c in zip(batches, costs)],
            "predicted_width": _json_float(predicted), "reason": why,
        })
        self._new = []
