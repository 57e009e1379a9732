"""Adaptive rules of a sweep spec: `[adaptive.rho]` for the rank axis, `[adaptive.d]` for the dimension axis.

A spec gives either `rhos = [...]` or `[adaptive.rho]`, and either `ds = [...]` or `[adaptive.d]`:

    [adaptive.rho]                  # per (problem, solver, d): RankLearner (orchestrator/adaptive_rank.py)
    min = 0.1                       # smallest rank fraction (rank = max(1, round(rho d)))
    max = 1.0                       # largest rank fraction
    points = 12                     # cells (distinct ranks) per d, initial ones included
    # initial = 3                   # cells of the first round, evenly spaced from min to max (default min(3, points))
    # batch = 1                     # cells added per later round

    [adaptive.d]                    # per (problem, solver, rho): DimensionLearner (orchestrator/adaptive_dimension.py)
    ladder = [8, 12, 16, 24, 32, 48, 64, 96, 128]   # the dimensions it may use
    budget_device_hours = 2         # the most device-hours each (problem, solver, rho) series may commit
    target = 0.02                   # stop once the alpha_inf interval (hi - lo) is narrower than this
    # start = 3                     # first round: `seeds` seeds at the `start` smallest rungs, 1 at the others
    # seeds_per_round = 4           # seeds added per later round (spread over rungs by the learner)
    # max_seeds = 64                # the most seeds at one rung
    # level = 0.95                  # confidence level of the interval

Pure: the standard library only (no numpy, torch, Ray or files), so that parsing a spec stays light.
Every bad value raises InvalidInput naming it, all problems of a rule in one line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lamcap.errors import InvalidInput
from lamcap.predictions.units import rank_of

AXES = {"rho": "rhos", "d": "ds"}  # adaptive rule name -> the list key it replaces


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise InvalidInput("; ".join(problems))


@dataclass(frozen=True)
class RhoRule:
    """The adaptive rank axis: `points` distinct ranks per d with rho in [min, max]."""

    min: float
    max: float
    points: int
    initial: int | None = None
    batch: int = 1

    def __post_init__(self) -> None:
        _raise_if(self.problems())

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        out = [f"adaptive.rho.{name}={getattr(self, name)!r} must be a number in (0, 1]"
               for name in ("min", "max") if not _is_real(getattr(self, name)) or not 0 < getattr(self, name) <= 1]
        if not out and self.min >= self.max:
            out.append(f"adaptive.rho.min={self.min!r} is not below adaptive.rho.max={self.max!r}")
        if not _is_int(self.points) or self.points < 2:
            out.append(f"adaptive.rho.points={self.points!r} must be an integer >= 2")
        elif self.initial is not None and (not _is_int(self.initial) or not 2 <= self.initial <= self.points):
            out.append(f"adaptive.rho.initial={self.initial!r} must be an integer in [2, points={self.points}]")
        if not _is_int(self.batch) or self.batch < 1:
            out.append(f"adaptive.rho.batch={self.batch!r} must be an integer >= 1")
        return out

    @property
    def n_initial(self) -> int:
        """Cells of the first round (before rounding to distinct ranks)."""
        return self.initial if self.initial is not None else min(3, self.points)

    def rank_range(self, d: int) -> tuple[int, int]:
        """The smallest and largest rank of the rule at dimension d."""
        return rank_of(self.min, d), rank_of(self.max, d)

    def initial_ranks(self, d: int) -> list[int]:
        """The first round's ranks at d: n_initial evenly spaced from the rule's smallest to largest, distinct."""
        lo, hi = self.rank_range(d)
        n = self.n_initial
        return sorted({lo + round(i * (hi - lo) / (n - 1)) for i in range(n)})

    def initial_rhos(self, d: int) -> list[float]:
        """The first round's rank fractions r / d at d (round(r / d * d) == r exactly)."""
        return [r / d for r in self.initial_ranks(d)]


@dataclass(frozen=True)
class DimensionRule:
    """The adaptive dimension axis: rungs of `ladder` and seeds at each, under a device-hour budget."""

    ladder: tuple[int, ...]
    budget_device_hours: float
    target: float
    start: int | None = None
    seeds_per_round: int = 4
    max_seeds: int = 64
    level: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.ladder, list):
            object.__setattr__(self, "ladder", tuple(self.ladder))
        _raise_if(self.problems())
        object.__setattr__(self, "ladder", tuple(sorted(self.ladder)))

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        out = self._ladder_problems()
        if not _is_real(self.budget_device_hours) or not 0 < self.budget_device_hours < float("inf"):
            out.append(f"adaptive.d.budget_device_hours={self.budget_device_hours!r} must be a positive number")
        if not _is_real(self.target) or not 0 < self.target < float("inf"):
            out.append(f"adaptive.d.target={self.target!r} must be a positive number (interval width in alpha)")
        if self.start is not None and (not _is_int(self.start) or self.start < 2
                                       or (not out and self.start > len(self.ladder))):
            out.append(f"adaptive.d.start={self.start!r} must be an integer in [2, len(ladder)]")
        for name in ("seeds_per_round", "max_seeds"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                out.append(f"adaptive.d.{name}={getattr(self, name)!r} must be an integer >= 1")
        if not _is_real(self.level) or not 0 < self.level < 1:
            out.append(f"adaptive.d.level={self.level!r} must be a number in (0, 1)")
        return out

    def _ladder_problems(self) -> list[str]:
        if not isinstance(self.ladder, tuple):
            return [f"adaptive.d.ladder={self.ladder!r} must be a list of dimensions"]
        if not self.ladder:
            return ["adaptive.d.ladder is empty: give at least two dimensions"]
        out = [f"adaptive.d.ladder: {d!r} must be an integer >= 2" for d in self.ladder if not _is_int(d) or d < 2]
        out += [f"adaptive.d.ladder: {d!r} appears twice" for i, d in enumerate(self.ladder) if d in self.ladder[:i]]
        if not out and len(self.ladder) < 2:
            out.append(f"adaptive.d.ladder={list(self.ladder)} has one dimension: a fit of alpha_inf + a / ln d"
                       " needs at least two")
        return out

    @property
    def n_start(self) -> int:
        """Rungs of the first round (the smallest ones)."""
        return self.start if self.start is not None else min(3, len(self.ladder))

    @property
    def budget_seconds(self) -> float:
        return float(self.budget_device_hours) * 3600.0

    def ladder_for(self, d_max: int | None) -> tuple[int, ...]:
        """The rungs at or below a problem's d_max (all of them for None)."""
        return tuple(d for d in self.ladder if d_max is None or d <= d_max)


RULES = {"rho": RhoRule, "d": DimensionRule}


@dataclass(frozen=True)
class AdaptiveRules:
    """The adaptive axes of a spec (None: that axis is a plain list). At most one axis is adaptive."""

    rho: RhoRule | None = None
    d: DimensionRule | None = None

    def __post_init__(self) -> None:
        if self.rho is not None and self.d is not None:
            raise InvalidInput("[adaptive.rho] and [adaptive.d] together: one adaptive axis per sweep (the"
                               " dimension learner fits alpha_inf at fixed rho; the rank learner works at fixed d)")

    def __bool__(self) -> bool:
        return self.rho is not None or self.d is not None

    def to_dict(self) -> dict:
        """{"rho": {...}, "d": {...}} without absent rules or unset optional keys; from_dict inverts it."""
        out = {}
        for name in RULES:
            rule = getattr(self, name)
            if rule is not None:
                raw = {k: v for k, v in dataclasses.asdict(rule).items() if v is not None}
                out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> AdaptiveRules:
        """Rules from a `[adaptive]` table; InvalidInput naming every bad key or value in one line."""
        rules, errors = parse(raw)
        _raise_if(errors)
        return rules


def _parse_rule(name: str, table: Any, errors: list[str]) -> Any:
    cls = RULES[name]
    if not isinstance(table, dict):
        errors.append(f"adaptive.{name}={table!r} must be a table of settings")
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    errors += [f"unknown key adaptive.{name}.{k}; expected one of {sorted(fields)}" for k in table if k not in fields]
    errors += [f"missing key adaptive.{name}.{k}" for k in sorted(required - set(table))]
    if required - set(table):
        return None
    try:
        return cls(**{k: v for k, v in table.items() if k in fields})
    except InvalidInput as exc:
        errors.append(str(exc))
        return None


def parse(raw: Any) -> tuple[AdaptiveRules, list[str]]:
    """(rules, problems): the rules of an `[adaptive]` table (those that parse) and every problem found."""
    if raw is None:
        return AdaptiveRules(), []
    if isinstance(raw, AdaptiveRules):
        return raw, []
    if not isinstance(raw, dict):
        return AdaptiveRules(), [f"adaptive={raw!r} must be a table with [adaptive.rho] and/or [adaptive.d]"]
    errors = [f"unknown key adaptive.{k}; expected 'rho' or 'd'" for k in raw if k not in RULES]
    rules = {name: _parse_rule(name, raw[name], errors) for name in RULES if name in raw}
    try:
        return AdaptiveRules(**rules), errors
    except InvalidInput as exc:
        return AdaptiveRules(), errors + [str(exc)]


def ladder_problems(rules: AdaptiveRules, d_max: Any) -> list[str]:
    """A d_max that leaves a problem fewer than two rungs of [adaptive.d] (no fit alpha_inf + a / ln d)."""
    if rules.d is None or not isinstance(d_max, tuple):
        return []
    return [f"d_max.{problem}={cap!r} leaves {list(rules.d.ladder_for(cap))} of adaptive.d.ladder: a fit needs two"
            for problem, cap in d_max if _is_int(cap) and len(rules.d.ladder_for(cap)) < 2]


def axis_problems(raw: dict) -> list[str]:
    """A spec dict that gives both a list and the adaptive rule replacing it (`rhos` and [adaptive.rho])."""
    table = raw.get("adaptive")
    table = table.to_dict() if isinstance(table, AdaptiveRules) else table
    if not isinstance(table, dict):
        return []
    return [f"{key} and [adaptive.{name}] both given: give one of them" for name, key in AXES.items()
            if name in table and key in raw]


def replaced_keys(raw: dict) -> set[str]:
    """The list keys (`rhos`, `ds`) that an adaptive rule of this spec dict stands in for."""
    table = raw.get("adaptive")
    table = table.to_dict() if isinstance(table, AdaptiveRules) else table
    return {AXES[name] for name in AXES if isinstance(table, dict) and name in table}


def merge(base: dict, layer: dict) -> dict:
    """`layer` over `base` for the adaptive axes: a layer's list drops the base's rule and vice versa.

    A rule table merges key by key over the base's rule of the same axis (`[adaptive.rho] points = 20`
    over a preset's rule keeps its min and max). Other keys of the layer replace the base's.
    """
    out = dict(base)
    rules = dict(out["adaptive"]) if isinstance(out.get("adaptive"), dict) else out.get("adaptive")
    layer_rules = layer.get("adaptive")
    for name, key in AXES.items():
        if key in layer and isinstance(rules, dict):
            rules.pop(name, None)
        if isinstance(layer_rules, dict) and name in layer_rules:
            out.pop(key, None)
    out.update((k, v) for k, v in layer.items() if k != "adaptive")
    if isinstance(layer_rules, dict) and isinstance(rules, dict):
        for name, table in layer_rules.items():
            old = rules.get(name)
            rules[name] = {**old, **table} if isinstance(old, dict) and isinstance(table, dict) else table
    elif "adaptive" in layer:
        rules = layer_rules
    if rules is None or rules == {}:
        out.pop("adaptive", None)
    else:
        out["adaptive"] = rules
    return out


def toml_tables(rules: AdaptiveRules, render) -> list[str]:
    """TOML lines of the rules' tables (`render` formats one value)."""
    lines: list[str] = []
    for name, table in rules.to_dict().items():
        lines += ["", f"[adaptive.{name}]"] + [f"{k} = {render(v)}" for k, v in table.items()]
    return lines
