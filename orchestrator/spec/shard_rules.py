"""The sweep spec's `[shards]` table: on how many devices each probe of a (problem, d) runs.

    [shards]
    dp = { d_min = 128, k = 8 }            # dp cells with d >= 128: every probe on a gang of 8 devices
    op = { d_min = 64, k = "auto" }        # the smallest k whose shard's competitors fit the device's budget
    # dp = { k = "auto", k_max = 4 }       # auto never asks for more than k_max (default: 8, at most the pool)

One rule per problem. Cells below d_min, and every lp cell (lp runs on one device), run unsharded;
a probe never has more shards than inputs (k is capped at p). `auto` picks, per probe, the smallest
k whose largest shard's competitors can be materialised (lamcap.kernels.budget.auto_shards).

The shard count is not part of SweepSpec.compatible_with: it does not change a verdict (verdicts
are decided in float64; tests/kernels/test_sharding.py checks that sharded and unsharded solves
give the same verdicts, steps and violations, W equal to 1e-5), like the chunk sizes a device
chooses. A store may be resumed with other shard counts; each record says how many ran it (`shards`).
This module imports neither Ray nor torch at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lamcap.errors import InvalidInput

AUTO = "auto"
# auto's default k_max: one node of 8 GPUs. A placement group is placed all at once, so a gang as wide as a
# whole autoscaling cluster would wait for every node before its first probe.
AUTO_K_MAX = 8
PROBLEMS = ("op", "dp")  # lamcap.orchestrator.spec.PROBLEMS
RULE_KEYS = ("k", "d_min", "k_max")
UNSHARDED_SOLVERS = ("lp",)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ShardRule:
    """Probes of `problem` cells with d >= d_min run on k devices (k = 'auto': see the module docstring)."""

    problem: str
    k: int | str
    d_min: int = 2
    k_max: int | None = None  # auto only: the largest gang it may ask for (None: AUTO_K_MAX, at most the pool)

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        name = f"shards.{self.problem}"
        out = [] if self.problem in PROBLEMS else [f"shards: unknown problem {self.problem!r}; expected one of "
                                                   f"{PROBLEMS}"]
        if self.k != AUTO and (not _is_int(self.k) or self.k < 1):
            out.append(f"{name}.k={self.k!r} must be an integer >= 1 or {AUTO!r}")
        if not _is_int(self.d_min) or self.d_min < 2:
            out.append(f"{name}.d_min={self.d_min!r} must be an integer >= 2")
        if self.k_max is not None:
            if self.k != AUTO:
                out.append(f"{name}.k_max applies to k = {AUTO!r} only (k = {self.k!r} is fixed)")
            elif not _is_int(self.k_max) or self.k_max < 1:
                out.append(f"{name}.k_max={self.k_max!r} must be an integer >= 1")
        return out

    def to_dict(self) -> dict:
        out: dict = {"d_min": self.d_min, "k": self.k}
        if self.k_max is not None:
            out["k_max"] = self.k_max
        return out


@dataclass(frozen=True)
class ShardRules:
    """The `[shards]` table: at most one rule per problem, sorted by problem."""

    rules: tuple[ShardRule, ...] = ()

    def __post_init__(self) -> None:
        problems = [msg for rule in self.rules for msg in rule.problems()]
        names = [rule.problem for rule in self.rules]
        problems += [f"shards.{p}: given twice" for i, p in enumerate(names) if p in names[:i]]
        if problems:
            raise InvalidInput("; ".join(problems))
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: r.problem)))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_for(self, problem: str, d: int, solver: str) -> ShardRule | None:
        """The rule a cell follows, or None (it runs unsharded)."""
        if solver in UNSHARDED_SOLVERS:
            return None
        return next((r for r in self.rules if r.problem == problem and d >= r.d_min), None)

    def gang_width(self, pool_size: int) -> int:
        """The most devices any probe may ask for: the largest fixed k and every auto rule's k_max (default
        AUTO_K_MAX, at most pool_size); 1 without rules."""
        widths = [r.k if r.k != AUTO else (r.k_max or min(AUTO_K_MAX, pool_size)) for r in self.rules]
        return max([1, *widths])

    def to_dict(self) -> dict:
        """{problem: {d_min, k[, k_max]}}: the TOML table; from_dict inverts it."""
        return {r.problem: r.to_dict() for r in self.rules}

    @classmethod
    def from_dict(cls, raw: Any) -> ShardRules:
        rules, problems = parse(raw)
        if problems:
            raise InvalidInput("; ".join(problems))
        return rules


def parse(raw: Any) -> tuple[ShardRules, list[str]]:
    """(rules, every problem of the table) from a parsed `[shards]` table (None: no rules)."""
    if raw is None or raw == {}:
        return ShardRules(), []
    if isinstance(raw, ShardRules):
        return raw, []
    if not isinstance(raw, dict):
        return ShardRules(), [f"shards={raw!r} must be a table of problem = {{ d_min = ..., k = ... }}"]
    rules, problems = [], []
    for problem, table in raw.items():
        if not isinstance(table, dict):
            problems.append(f"shards.{problem}={table!r} must be a table like {{ d_min = 128, k = 8 }}")
            continue
        problems += [f"unknown key shards.{problem}.{key}; expected one of {list(RULE_KEYS)}"
                     for key in table if key not in RULE_KEYS]
        if "k" not in table:
            problems.append(f"shards.{problem} needs k (an integer >= 1 or {AUTO!r})")
            continue
        rule = ShardRule(problem, table["k"], table.get("d_min", 2), table.get("k_max"))
        found = rule.problems()
        problems += found
        if not found:
            rules.append(rule)
    if problems:
        return ShardRules(), problems
    return ShardRules(tuple(rules)), []


def toml_lines(rules: ShardRules, value) -> list[str]:
    """The `[shards]` table as TOML lines (inline tables); `value` renders one TOML value."""
    if not rules:
        return []
    lines = ["", "[shards]"]
    for problem, table in rules.to_dict().items():
        lines.append(f"{problem} = {{ " + ", ".join(f"{k} = {value(v)}" for k, v in table.items()) + " }")
    return lines


@dataclass(frozen=True)
class ShardPlan:
    """A sweep's rules resolved for its pool and device: how many shards each probe runs on."""

    rules: ShardRules
    width: int  # the pool's gang width: no probe runs on more devices
    device_type: str = "cpu"
    total_memory: int | None = None  # a GPU's total memory (its materialize budget depends on it)
    memory_budget_bytes: int | None = None
    storage_dtype: str = "float32"

    def shards(self, problem: str, d: int, solver: str, p: int) -> int:
        """Devices the probe (problem, d, solver, p) runs on: 1, the rule's k, or auto's pick; at most p."""
        rule = self.rules.rule_for(problem, d, solver)
        if rule is None:
            return 1
        if rule.k != AUTO:
            return max(1, min(rule.k, p, self.width))
        from lamcap.kernels.budget import auto_shards

        return auto_shards(problem, d, p, self.most(problem, d, solver), storage_dtype=self.storage_dtype,
                           device_type=self.device_type, total_memory=self.total_memory,
                           memory_budget_bytes=self.memory_budget_bytes)

    def most(self, problem: str, d: int, solver: str) -> int:
        """The most shards any probe of the cell may get (what its memory cap may count on)."""
        rule = self.rules.rule_for(problem, d, solver)
        if rule is None:
            return 1
        return min(rule.k if rule.k != AUTO else (rule.k_max or AUTO_K_MAX), self.width)


UNSHARDED = ShardPlan(ShardRules(), 1)
