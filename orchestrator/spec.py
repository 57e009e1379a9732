"""The sweep spec: frozen records for cells and probes, TOML/preset/flag parsing, validation.

A sweep TOML file holds the same keys as `SweepSpec.to_dict()` (see examples/sweep.toml):

    preset = "demo"                 # optional: start from a preset, the keys below override it
    problems = ["op", "dp"]         # 'op' (shared outputs) and/or 'dp' (private competitors)
    solvers = ["adam", "hebbian"]   # 'adam', 'hebbian', 'lp' (lp: full rank: its cells exist at rho = 1 only)
    rhos = [1.0, 0.5]               # rank fractions in (0, 1]; rank r = max(1, round(rho d))
    ds = [8, 12, 16]                # dimensions, each >= 2
    seeds = 3                       # disorder seeds 0 .. seeds-1 per cell
    device = "auto"                 # 'cpu', 'cuda' or 'auto' (the driver decides and records)

    [d_max]                         # optional caps on ds (lamcap.orchestrator.d_caps): a key names a
    dp = 12                         # problem, a solver or "rho=R"; here dp and lp run d <= 12 only
    lp = 12

    [solver_settings]               # lamcap.kernels.solvers.settings.SolverSettings (every key optional)
    lr = 1.0
    max_steps = 2000
    warmup_frac = 0.05
    mode = "auto"                   # 'auto', 'materialize' or 'regenerate'
    storage_dtype = "float32"       # 'float32' or 'bfloat16'
    # memory_budget_bytes = 4000000000

    # [adaptive.rho] or [adaptive.d]: a rule in place of rhos or ds (lamcap.orchestrator.adaptive_rules)

    # [shards]                      # optional: probes on gangs of devices (lamcap.orchestrator.shard_rules)
    # dp = { d_min = 128, k = 8 }

    [search]                        # SearchSettings (every key optional)
    curve_points = 0                # extra loads per cell around its median alpha* (accuracy curves)
    curve_span = 0.3                # their relative half-width around the median alpha*
    max_parallel_per_learner = 4    # k-section width cap
    resolution = 0.0                # relative: stop once p_hi - p_lo <= max(1, resolution p_lo); 0 = exact p*
    # p_max = 100000                # hard cap on p

Precedence in `load_spec`: preset, then the file, then `overrides` (flags). Overrides are flat
or nested: `{"ds": [8], "lr": 0.1, "search": {"curve_points": 4}}`; `None` values are ignored
(unset flags), and the flag spellings `rho`, `d`, `steps` stand for `rhos`, `ds`, `max_steps`.
Every bad value raises `InvalidInput` naming it; all problems are reported in one message.
This module imports neither Ray nor torch at import time.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamcap.kernels.errors import InvalidInput
from lamcap.orchestrator import adaptive_rules, shard_rules
from lamcap.orchestrator.adaptive_rules import AdaptiveRules
from lamcap.orchestrator.d_caps import cap_for, cap_problems
from lamcap.orchestrator.shard_rules import ShardRules

if TYPE_CHECKING:
    from lamcap.kernels.solvers.settings import SolverSettings

# The same names as lamcap.kernels.disorder.PROBLEMS and lamcap.kernels.solvers.SOLVERS (a test checks), kept
# here so that parsing a spec does not import torch.
PROBLEMS = ("op", "dp")
SOLVERS = ("adam", "hebbian", "lp")
DEVICES = ("cpu", "cuda", "auto")
PURPOSES = ("search", "curve")
SPEC_KEYS = ("problems", "solvers", "rhos", "ds", "d_max", "seeds", "device", "solver_settings", "search",
             "adaptive", "shards")
FLAG_ALIASES = {"rho": "rhos", "d": "ds", "steps": "max_steps", "problem": "problems", "solver": "solvers"}


@dataclass(frozen=True, order=True)
class Cell:
    """One (problem, solver, requested rank fraction rho, dimension d) of a sweep."""

    problem: str
    solver: str
    rho: float
    d: int

    @property
    def rank(self) -> int:
        """r = max(1, round(rho d)), Python's round (half to even)."""
        return max(1, round(self.rho * self.d))

    @property
    def rho_eff(self) -> float:
        """The rank fraction actually used: rank / d."""
        return self.rank / self.d

    @property
    def theory_kind(self) -> str:
        """Which finite-size prediction guesses this cell's p*: 'hebbian' or 'optimal'."""
        return "hebbian" if self.solver == "hebbian" else "optimal"


@dataclass(frozen=True, order=True)
class Probe:
    """One (cell, seed, p): build the instance, solve, verify. purpose: 'search' or 'curve'."""

    cell: Cell
    seed: int
    p: int
    purpose: str = "search"

    @property
    def key(self) -> tuple:
        """Hashable identity; a probe with this key is never written twice."""
        c = self.cell
        return (c.problem, c.solver, c.rho, c.d, self.seed, self.p, self.purpose)

    @property
    def alpha(self) -> float:
        """Load alpha = p ln p / d^2."""
        return self.p * math.log(self.p) / self.cell.d ** 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SearchSettings:
    """How thresholds are searched; the scheduler reads these."""

    curve_points: int = 0
    curve_span: float = 0.3
    max_parallel_per_learner: int = 4
    p_max: int | None = None
    resolution: float = 0.0  # relative bracket width at which a search stops (search.ThresholdLearner)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidInput("; ".join(problems))

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        out = []
        if not _is_int(self.curve_points) or self.curve_points < 0:
            out.append(f"curve_points={self.curve_points!r} must be an integer >= 0")
        if not _is_real(self.curve_span) or not 0 < self.curve_span < 1:
            out.append(f"curve_span={self.curve_span!r} must be a number in (0, 1)")
        if not _is_int(self.max_parallel_per_learner) or self.max_parallel_per_learner < 1:
            out.append(f"max_parallel_per_learner={self.max_parallel_per_learner!r} must be an integer >= 1")
        if self.p_max is not None and (not _is_int(self.p_max) or self.p_max < 3):
            out.append(f"p_max={self.p_max!r} must be an integer >= 3 or absent")
        if not _is_real(self.resolution) or not 0 <= self.resolution < 0.5:
            out.append(f"resolution={self.resolution!r} must be a number in [0, 0.5) (0: the exact p*)")
        return out


def _default_solver_settings() -> SolverSettings:
    from lamcap.kernels.solvers.settings import SolverSettings

    return SolverSettings()


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: every (problem, solver, rho, d) cell times `seeds` seeds.

    `d_max` caps the dimensions of the cells whose problem, solver or rank fraction a key names
    ({"dp": 256, "rho=0.5": 64, "lp": 16}: dp cells only for d <= 256, rho = 0.5 cells for d <= 64,
    lp cells for d <= 16; lamcap.orchestrator.d_caps); it is stored as a sorted tuple of (key, d)
    pairs so that the spec stays hashable. `lp` cells exist only at rho = 1 (the exact oracle is full
    rank).
    """

    problems: tuple[str, ...]
    solvers: tuple[str, ...]
    rhos: tuple[float, ...]
    ds: tuple[int, ...]
    seeds: int
    solver_settings: SolverSettings = field(default_factory=_default_solver_settings)
    search: SearchSettings = SearchSettings()
    device: str = "auto"
    d_max: tuple[tuple[str, int], ...] = ()
    adaptive: AdaptiveRules = AdaptiveRules()  # rules standing in for rhos and/or ds (adaptive_rules.py)
    shards: ShardRules = ShardRules()  # probes on gangs of devices (shard_rules.py); not in compatible_with

    def __post_init__(self) -> None:
        if isinstance(self.adaptive, dict):
            object.__setattr__(self, "adaptive", AdaptiveRules.from_dict(self.adaptive))
        if isinstance(self.shards, dict):
            object.__setattr__(self, "shards", ShardRules.from_dict(self.shards))
        for name in ("problems", "solvers", "rhos", "ds"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.rhos, tuple):  # 1 and 1.0 are the same rank fraction: store floats
            object.__setattr__(self, "rhos", tuple(float(r) if _is_int(r) else r for r in self.rhos))
        object.__setattr__(self, "d_max", _d_max_pairs(self.d_max))
        validate(self)

    def ds_for(self, problem: str, solver: str | None = None, rho: float | None = None) -> tuple[int, ...]:
        """The dimensions swept for a problem (and, given, a solver and rho): ds, or the adaptive ladder,
        cut at their d_max caps; ascending."""
        cap = cap_for(self.d_max, problem, solver, rho)
        if self.adaptive.d is not None:
            return self.adaptive.d.ladder_for(cap)
        return tuple(sorted(d for d in self.ds if cap is None or d <= cap))

    @property
    def max_d(self) -> int:
        """The largest d any cell may have (singular values are padded to it in the store)."""
        return max(max(self.ds_for(problem)) for problem in self.problems)

    def cells(self) -> list[Cell]:
        """Every (problem, solver, rho, d) cell, sorted; lp only at rho = 1; with an adaptive axis, only its
        first round's."""
        return sorted(cell for problem in self.problems for solver in self.solvers
                      for cell in self._first_cells(problem, solver))

    def _first_cells(self, problem: str, solver: str) -> list[Cell]:
        rule_rho, rule_d = self.adaptive.rho, self.adaptive.d
        if rule_rho is not None:  # the rank fractions depend on d: the caps of each (rho, d) still apply
            return [Cell(problem, solver, rho, d) for d in self.ds_for(problem, solver)
                    for rho in rule_rho.initial_rhos(d) if d in self.ds_for(problem, solver, rho)]
        out = []
        for rho in self.rhos_for(solver):
            ds = self.ds_for(problem, solver, rho)
            out += [Cell(problem, solver, rho, d) for d in (ds[:rule_d.n_start] if rule_d else ds)]
        return out

    def rhos_for(self, solver: str) -> tuple[float, ...]:
        """The rank fractions a solver runs at: all of rhos, or 1 alone for the full-rank lp."""
        return tuple(r for r in self.rhos if solver != "lp" or r == 1)

    def to_dict(self) -> dict:
        """JSON- and TOML-able (absent optional values are left out); from_dict inverts it exactly."""
        out = {
            "problems": list(self.problems),
            "solvers": list(self.solvers),
            "rhos": list(self.rhos),
            "ds": list(self.ds),
            "d_max": dict(self.d_max),
            "seeds": self.seeds,
            "device": self.device,
            "solver_settings": dataclasses.asdict(self.solver_settings),
            "search": dataclasses.asdict(self.search),
        }
        for section in ("solver_settings", "search"):
            out[section] = {k: v for k, v in out[section].items() if v is not None}
        for key in adaptive_rules.replaced_keys({"adaptive": self.adaptive}):
            out.pop(key)
        if self.adaptive:
            out["adaptive"] = self.adaptive.to_dict()
        if self.shards:
            out["shards"] = self.shards.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """Build from `to_dict` output (or a parsed TOML file); every bad value reported at once."""
        return _spec_from_dict(d)

    def compatible_with(self, other: SweepSpec) -> list[str]:
        """Reasons the two specs cannot share a store; empty when they can.

        Everything that decides which probes exist or what they return must agree (resolution
        included: it decides where a search stops); list order does not matter. Only the
        scheduling knobs max_parallel_per_learner and the [shards] table (how many devices a probe
        runs on, which does not change its verdict) may differ.
        """
        reasons = []
        if self.adaptive != other.adaptive:
            reasons.append(f"adaptive rules differ: {self.adaptive.to_dict()} vs {other.adaptive.to_dict()}")
        for name in ("problems", "solvers", "rhos", "ds"):
            mine, theirs = sorted(getattr(self, name)), sorted(getattr(other, name))
            if mine != theirs:
                reasons.append(f"{name} differ: {mine} vs {theirs}")
        for name in ("d_max", "seeds", "device", "solver_settings"):
            if getattr(self, name) != getattr(other, name):
                reasons.append(f"{name} differ: {getattr(self, name)!r} vs {getattr(other, name)!r}")
        for name in ("curve_points", "curve_span", "p_max", "resolution"):
            mine, theirs = getattr(self.search, name), getattr(other.search, name)
            if mine != theirs:
                reasons.append(f"search.{name} differ: {mine!r} vs {theirs!r}")
        return reasons

    def additions_to(self, stored: SweepSpec) -> list[str] | None:
        """What this spec adds to a store written for `stored`, when it only adds cells: [] when the two
        are compatible, one line per grown axis ("ds + [128]", "seeds 4 -> 8") when this spec has every
        stored problem, solver, rank fraction, dimension and seed and agrees on everything else, None
        otherwise.

        Every stored probe and threshold is then one this spec would produce, because a cell's search
        depends on nothing outside the cell. Two things break that, so they are not extensions: an
        adaptive axis (its decisions read every cell), and more seeds with curve points (a cell's curve
        loads follow the median over its seeds).
        """
        if not self.compatible_with(stored):
            return []
        if self.adaptive or stored.adaptive:
            return None
        added = []
        for name in ("problems", "solvers", "rhos", "ds"):
            mine, theirs = set(getattr(self, name)), set(getattr(stored, name))
            if not theirs <= mine:
                return None
            if mine - theirs:
                added.append(f"{name} + {sorted(mine - theirs)}")
        if self.seeds < stored.seeds or (self.seeds > stored.seeds and self.search.curve_points):
            return None
        if self.seeds > stored.seeds:
            added.append(f"seeds {stored.seeds} -> {self.seeds}")
        same_axes = {name: getattr(stored, name) for name in ("problems", "solvers", "rhos", "ds", "seeds")}
        try:
            narrowed = dataclasses.replace(self, **same_axes)
        except InvalidInput:  # this spec's other settings cannot hold the stored axes: not an extension
            return None
        return None if narrowed.compatible_with(stored) else added


def _d_max_pairs(value: Any) -> Any:
    """A dict or a sequence of (problem, d) pairs as a sorted tuple of pairs; anything else unchanged."""
    if isinstance(value, dict):
        value = list(value.items())
    if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return tuple(sorted((tuple(p) for p in value), key=repr))
    return value


def _list_problems(name: str, value: Any, ok, what: str) -> list[str]:
    """Messages for a list field: not a non-empty list, bad elements, duplicates."""
    if not isinstance(value, (list, tuple)):
        return [f"{name}={value!r} must be a list"]
    if not value:
        return [f"{name} is empty: give at least one value"]
    out = [f"{name}: {v!r} {what}" for v in value if not ok(v)]
    out += [f"{name}: {v!r} appears twice" for i, v in enumerate(value) if v in value[:i]]
    return out


def _lp_problems(solvers: Any, rhos: Any, ds: Any, d_max: Any = (), problems: Any = PROBLEMS,
                 adaptive_rho: bool = False) -> list[str]:
    """lp needs rho = 1 among the rhos (its only cells), no adaptive rank axis, and every d it runs within
    LP_MAX_D."""
    if not isinstance(solvers, (list, tuple)) or "lp" not in solvers:
        return []
    out = []
    real = [r for r in rhos if _is_real(r)] if isinstance(rhos, (list, tuple)) else []
    if adaptive_rho:
        out.append("solver 'lp' with [adaptive.rho]: lp is full rank, a rank axis does not apply; "
                   "sweep lp in its own spec with rhos = [1.0]")
    elif real and 1 not in real:
        out.append(f"solver 'lp' needs rho = 1 among the rhos (lp is full rank: its cells exist at rho = 1 "
                   f"only), got rhos = {real}")
    from lamcap.kernels.solvers.lp import LP_MAX_D

    caps = [cap_for(d_max, p, "lp", 1.0) if isinstance(d_max, tuple) else None
            for p in (problems if isinstance(problems, (list, tuple)) else PROBLEMS)]
    largest = None if None in caps else max(caps, default=None)  # the largest d an lp cell may have
    out += [f"d={d} with solver 'lp': lp handles d <= {LP_MAX_D} only (cap it with d_max.lp = {LP_MAX_D})"
            for d in (ds if isinstance(ds, (list, tuple)) else ())
            if _is_int(d) and d > LP_MAX_D and (largest is None or d <= largest)]
    return out


def _field_problems(problems: Any, solvers: Any, rhos: Any, ds: Any, seeds: Any, device: Any,
                    d_max: Any, adaptive: AdaptiveRules = AdaptiveRules(),
                    replaced: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every bad plain value of a spec, each message naming it.

    A list that an adaptive rule replaces is not checked (`replaced`: also when the rule itself was bad).
    """
    replaced = set(replaced) | adaptive_rules.replaced_keys({"adaptive": adaptive})
    out = _list_problems("problems", problems, lambda v: v in PROBLEMS, f"is not a known problem {PROBLEMS}")
    out += _list_problems("solvers", solvers, lambda v: v in SOLVERS, f"is not a known solver {SOLVERS}")
    if "rhos" not in replaced:
        out += _list_problems("rhos", rhos, lambda r: _is_real(r) and 0 < r <= 1, "must be a number in (0, 1]")
    if "ds" not in replaced:
        out += _list_problems("ds", ds, lambda d: _is_int(d) and d >= 2, "must be an integer >= 2")
    if not _is_int(seeds) or seeds < 1:
        out.append(f"seeds={seeds!r} must be an integer >= 1")
    elif adaptive.d is not None and seeds < 2:
        out.append(f"seeds={seeds!r} with [adaptive.d]: the first round needs the seeds' spread, give seeds >= 2")
    if device not in DEVICES:
        out.append(f"device={device!r} is not one of {DEVICES}")
    rhos = [adaptive.rho.min, adaptive.rho.max] if adaptive.rho else rhos
    ds = list(adaptive.d.ladder) if adaptive.d else ds
    out += adaptive_rules.ladder_problems(adaptive, d_max)
    return out + cap_problems(d_max, PROBLEMS, SOLVERS, rhos, ds) + _lp_problems(
        solvers, rhos, ds, d_max, problems, adaptive.rho is not None)


def spec_problems(spec: SweepSpec) -> list[str]:
    """Every bad value of a spec, each message naming it (empty when valid)."""
    from lamcap.kernels.solvers.settings import SolverSettings

    if not isinstance(spec.adaptive, AdaptiveRules):
        return [f"adaptive={spec.adaptive!r} must be an AdaptiveRules"]
    out = _field_problems(spec.problems, spec.solvers, spec.rhos, spec.ds, spec.seeds, spec.device, spec.d_max,
                          spec.adaptive)
    given = {k: v for k, v in (("rhos", spec.rhos), ("ds", spec.ds)) if v}
    out += adaptive_rules.axis_problems({"adaptive": spec.adaptive, **given})
    if not isinstance(spec.search, SearchSettings):
        out.append(f"search={spec.search!r} must be a SearchSettings")
    if not isinstance(spec.solver_settings, SolverSettings):
        out.append(f"solver_settings={spec.solver_settings!r} must be a SolverSettings")
    if not isinstance(spec.shards, ShardRules):
        out.append(f"shards={spec.shards!r} must be a ShardRules")
    return out


def validate(spec: SweepSpec) -> None:
    """Raise InvalidInput listing every bad value of the spec; return quietly when it is valid."""
    problems = spec_problems(spec)
    if problems:
        raise InvalidInput("invalid sweep spec: " + "; ".join(problems))


# ---- parsing: dicts (TOML, presets, flags) to a spec ------------------------------------------

REQUIRED_KEYS = ("problems", "solvers", "rhos", "ds", "seeds")


def _section(raw: dict, name: str, cls: type, errors: list[str]) -> Any:
    """Build a settings dataclass from its dict section, adding any problems to `errors`."""
    section = raw.get(name, {})
    if not isinstance(section, dict):
        errors.append(f"{name}={section!r} must be a table of settings")
        return cls()
    known = {f.name for f in dataclasses.fields(cls)}
    errors += [f"unknown key {name}.{k}; expected one of {sorted(known)}" for k in section if k not in known]
    try:
        return cls(**{k: v for k, v in section.items() if k in known})
    except InvalidInput as exc:
        errors.append(f"{name}: {exc}")
        return cls()


def _spec_from_dict(raw: dict) -> SweepSpec:
    """A validated spec from a `to_dict`-shaped dict; every problem reported in one InvalidInput."""
    from lamcap.kernels.solvers.settings import SolverSettings

    if not isinstance(raw, dict):
        raise InvalidInput(f"a sweep spec must be a table of keys, got {raw!r}")
    errors = [f"unknown key {k!r}; expected one of {list(SPEC_KEYS)}" for k in raw if k not in SPEC_KEYS]
    replaced = adaptive_rules.replaced_keys(raw)
    errors += [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in raw and k not in replaced]
    errors += adaptive_rules.axis_problems(raw)
    adaptive, adaptive_errors = adaptive_rules.parse(raw.get("adaptive"))
    errors += adaptive_errors
    shards, shard_errors = shard_rules.parse(raw.get("shards"))
    errors += shard_errors
    solver_settings = _section(raw, "solver_settings", SolverSettings, errors)
    search = _section(raw, "search", SearchSettings, errors)
    fields = {k: raw.get(k, ()) for k in ("problems", "solvers", "rhos", "ds")}
    seeds, device = raw.get("seeds", 1), raw.get("device", "auto")
    d_max = _d_max_pairs(raw.get("d_max", {}))
    errors += _field_problems(**fields, seeds=seeds, device=device, d_max=d_max, adaptive=adaptive,
                              replaced=replaced)
    if errors:
        raise InvalidInput("invalid sweep spec: " + "; ".join(errors))
    return SweepSpec(**fields, seeds=seeds, solver_settings=solver_settings, search=search, device=device,
                     d_max=d_max, adaptive=adaptive, shards=shards)


def _merge(base: dict, layer: dict) -> dict:
    """`layer` over `base`; the settings sections, d_max and the adaptive rules merge key by key."""
    axis_keys = {*adaptive_rules.AXES.values(), "adaptive"}  # a layer's list and rule of one axis replace each other
    out = adaptive_rules.merge(base, {k: v for k, v in layer.items() if k in axis_keys})
    for key, value in layer.items():
        if key in axis_keys:
            continue
        if key in ("solver_settings", "search", "d_max", "shards") and isinstance(value, dict) \
                and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def overrides_to_dict(overrides: dict) -> dict:
    """Flag values as a `to_dict`-shaped layer: None dropped, aliases resolved, flat settings routed."""
    from lamcap.kernels.solvers.settings import SolverSettings

    solver_keys = {f.name for f in dataclasses.fields(SolverSettings)}
    search_keys = {f.name for f in dataclasses.fields(SearchSettings)}
    out: dict = {}
    for key, value in overrides.items():
        if value is None:
            continue
        key = FLAG_ALIASES.get(key, key)
        if key in solver_keys:
            out.setdefault("solver_settings", {})[key] = value
        elif key in search_keys:
            out.setdefault("search", {})[key] = value
        elif isinstance(value, dict) and key in ("solver_settings", "search", "d_max", "shards"):
            out[key] = {**out.get(key, {}), **{k: v for k, v in value.items() if v is not None}}
        else:
            out[key] = value
    return out


def read_toml(path: str) -> dict:
    """The parsed TOML file; InvalidInput naming the file when it is missing or malformed."""
    import tomllib

    if os.path.isdir(path):
        raise InvalidInput(f"sweep spec {path!r} is a directory, not a TOML file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidInput(f"sweep spec file {path!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise InvalidInput(f"sweep spec file {path!r} is not valid TOML: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _toml_key(key: str) -> str:
    """A bare TOML key where it may be one, else a quoted one ('rho=0.5')."""
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(spec: SweepSpec) -> str:
    """The spec as a sweep TOML file that load_spec reads back to an equal spec."""
    raw = spec.to_dict()
    raw.pop("adaptive", None)
    raw.pop("shards", None)
    tables = {k: raw.pop(k) for k in ("d_max", "solver_settings", "search")}
    lines = [f"{k} = {_toml_value(v)}" for k, v in raw.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    lines += adaptive_rules.toml_tables(spec.adaptive, _toml_value)
    lines += shard_rules.toml_lines(spec.shards, _toml_value)
    return "\n".join(lines) + "\n"


def preset_layer(preset: str | None) -> dict:
    """The named preset's dict ({} for None); InvalidInput naming an unknown preset."""
    from lamcap.orchestrator.presets import preset_dict

    return preset_dict(preset) if preset is not None else {}


def spec_from_layers(base: dict, layer: dict, overrides: dict | None = None) -> SweepSpec:
    """A validated spec from a base dict (a preset), a file-shaped layer over it, then flag overrides."""
    raw = _merge(base, layer)
    raw = _merge(raw, overrides_to_dict(overrides or {}))
    return _spec_from_dict(raw)


def load_spec(path: str | None = None, preset: str | None = None, overrides: dict | None = None) -> SweepSpec:
    """A validated spec: a preset, then the TOML file (which may name its own `preset`), then flags."""
    layer = read_toml(path) if path is not None else {}
    named = layer.pop("preset", None)
    if preset is not None and named is not None and named != preset:
        raise InvalidInput(f"--preset {preset!r} contradicts preset = {named!r} in {path!r}")
    return spec_from_layers(preset_layer(preset if preset is not None else named), layer, overrides)
