"""The sweep spec: frozen records for cells and probes, TOML/preset/flag parsing, validation.

A sweep TOML file holds the same keys as `SweepSpec.to_dict()` (see examples/sweep.toml):

    preset = "demo"                 # optional: start from a preset, the keys below override it
    problems = ["op", "dp"]         # 'op' (shared outputs) and/or 'dp' (private competitors)
    solvers = ["adam", "hebbian"]   # 'adam', 'hebbian', 'lp' (lp: full rank: its cells exist at rho = 1 only)
    rhos = [1.0, 0.5]               # rank fractions in (0, 1]; rank r = max(1, round(rho d))
    ds = [8, 12, 16]                # dimensions, each >= 2
    seeds = 3                       # disorder seeds 0 .. seeds-1 per cell
    device = "auto"                 # 'cpu', 'cuda' or 'auto' (the driver decides and records)

    [d_max]                         # optional caps on ds (lamcap.orchestrator.spec.d_caps): a key names a
    dp = 12                         # problem, a solver or "rho=R"; here dp and lp run d <= 12 only
    lp = 12

    [solver_settings]               # lamcap.kernels.settings.SolverSettings (every key optional)
    lr = 1.0
    max_steps = 2000
    warmup_frac = 0.05
    mode = "auto"                   # 'auto', 'materialize' or 'regenerate'
    storage_dtype = "float32"       # 'float32' or 'bfloat16'
    # memory_budget_bytes = 4000000000

    # [adaptive.rho] or [adaptive.d]: a rule in place of rhos or ds (lamcap.orchestrator.spec.adaptive_rules)

    # [shards]                      # optional: probes on gangs of devices (lamcap.orchestrator.spec.shard_rules)
    # dp = { d_min = 128, k = 8 }

    [search]                        # SearchSettings (every key optional)
    curve_points = 0                # extra loads per cell around its median alpha* (accuracy curves)
    curve_span = 0.3                # their relative half-width around the median alpha*
    width = 1                       # points a search probes per round (k-section), whatever the workers
    resolution = 0.0                # relative: stop once p_hi - p_lo <= max(1, resolution p_lo); 0 = exact p*
    # p_max = 100000                # hard cap on p

Precedence in `load_spec`: preset, then the file, then `overrides` (flags). Overrides are flat
or nested: `{"ds": [8], "lr": 0.1, "search": {"curve_points": 4}}`; `None` values are ignored
(unset flags), and the flag spellings `rho`, `d`, `steps` stand for `rhos`, `ds`, `max_steps`.
Every bad value raises `InvalidInput` naming it; all problems are reported in one message.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lamcap.errors import InvalidInput
from lamcap.kernels.settings import SolverSettings
from lamcap.orchestrator.spec import adaptive_rules, selectors, shard_rules
from lamcap.orchestrator.spec.adaptive_rules import AdaptiveRules
from lamcap.orchestrator.spec.cells import Cell
from lamcap.orchestrator.spec.d_caps import cap_for
from lamcap.orchestrator.spec.search import SearchSettings
from lamcap.orchestrator.spec.shard_rules import ShardRules
from lamcap.orchestrator.spec.validation import d_max_pairs, field_problems, spec_problems
from lamcap.orchestrator.spec.values import is_int

SPEC_KEYS = ("problems", "solvers", "rhos", "ds", "d_max", "seeds", "seeds_for", "device", "solver_settings", "search",
             "resolution_for", "adaptive", "shards")
REQUIRED_KEYS = ("problems", "solvers", "rhos", "ds", "seeds")

LIST_AXES = ("problems", "solvers", "rhos", "ds")  # the list fields a spec may extend a store along


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: every (problem, solver, rho, d) cell times `seeds` seeds.

    `d_max` caps the dimensions of the cells whose problem, solver or rank fraction a key names
    ({"dp": 256, "rho=0.5": 64, "lp": 16}: dp cells only for d <= 256, rho = 0.5 cells for d <= 64,
    lp cells for d <= 16; lamcap.orchestrator.spec.d_caps); it is stored as a sorted tuple of (key, d)
    pairs so that the spec stays hashable. `lp` cells exist only at rho = 1 (the exact oracle is full
    rank).
    """

    problems: tuple[str, ...]
    solvers: tuple[str, ...]
    rhos: tuple[float, ...]
    ds: tuple[int, ...]
    seeds: int
    solver_settings: SolverSettings = field(default_factory=SolverSettings)
    search: SearchSettings = SearchSettings()
    device: str = "auto"
    d_max: tuple[tuple[str, int], ...] = ()
    adaptive: AdaptiveRules = AdaptiveRules()  # rules standing in for rhos and/or ds (adaptive_rules.py)
    shards: ShardRules = ShardRules()  # probes on gangs of devices (shard_rules.py); not in compatible_with
    seeds_for: tuple[tuple[str, int], ...] = ()  # per-cell caps on seeds (selectors.py)
    resolution_for: tuple[tuple[str, float], ...] = ()  # per-cell search resolutions (selectors.py)

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
            object.__setattr__(self, "rhos", tuple(float(r) if is_int(r) else r for r in self.rhos))
        object.__setattr__(self, "d_max", d_max_pairs(self.d_max))
        object.__setattr__(self, "seeds_for", selectors.pairs(self.seeds_for))
        object.__setattr__(self, "resolution_for", selectors.pairs(self.resolution_for))
        validate(self)

    def seeds_of(self, cell: Cell) -> int:
        """Seeds 0 .. seeds_of(cell) - 1 run in the cell: `seeds`, or a smaller cap of [seeds_for]."""
        return selectors.seeds_of(self.seeds_for, self.seeds, cell.problem, cell.solver, cell.rho, cell.d)

    def resolution_of(self, cell: Cell) -> float:
        """The relative resolution of the cell's searches: [resolution_for]'s, or search.resolution."""
        return selectors.resolution_of(self.resolution_for, self.search.resolution, cell.problem, cell.solver,
                                       cell.rho, cell.d)

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
        for table in ("seeds_for", "resolution_for"):
            if getattr(self, table):
                out[table] = dict(getattr(self, table))
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
        return spec_from_dict(d)

    def compatible_with(self, other: SweepSpec) -> list[str]:
        """Reasons the two specs cannot share a store; empty when they can.

        Everything that decides which probes exist or what they return must agree (the search's width
        and resolution included: they decide which probes a search visits and where it stops); list
        order does not matter. Only the [shards] table (how many devices a probe runs on, which does
        not change its verdict) may differ.
        """
        reasons = []
        if self.adaptive != other.adaptive:
            reasons.append(f"adaptive rules differ: {self.adaptive.to_dict()} vs {other.adaptive.to_dict()}")
        for name in ("problems", "solvers", "rhos", "ds"):
            mine, theirs = sorted(getattr(self, name)), sorted(getattr(other, name))
            if mine != theirs:
                reasons.append(f"{name} differ: {mine} vs {theirs}")
        for name in ("d_max", "seeds", "seeds_for", "resolution_for", "device", "solver_settings"):
            if getattr(self, name) != getattr(other, name):
                reasons.append(f"{name} differ: {getattr(self, name)!r} vs {getattr(other, name)!r}")
        for name in ("curve_points", "curve_span", "width", "p_max", "resolution"):
            mine, theirs = getattr(self.search, name), getattr(other.search, name)
            if mine != theirs:
                reasons.append(f"search.{name} differ: {mine!r} vs {theirs!r}")
        return reasons

    def additions_to(self, stored: SweepSpec) -> list[str] | None:
        """What this spec adds to a store written for `stored`, when it only adds cells: [] when the two
        are compatible, one line per grown axis ("ds + [128]", "seeds 4 -> 8") when this spec has every
        stored problem, solver, rank fraction, dimension and seed and agrees on everything else, None
        otherwise (`conflicts_with` then says why).

        Every stored probe and threshold is then one this spec would produce, because a cell's search
        depends on nothing outside the cell. Two things break that, so they are not extensions: an
        adaptive axis (its decisions read every cell), and more seeds with curve points (a cell's curve
        loads follow the median over its seeds).
        """
        if not self.compatible_with(stored):
            return []
        if self.conflicts_with(stored):
            return None
        new = {name: sorted(set(getattr(self, name)) - set(getattr(stored, name))) for name in LIST_AXES}
        added = [f"{name} + {values}" for name, values in new.items() if values]
        return added + ([f"seeds {stored.seeds} -> {self.seeds}"] if self.seeds > stored.seeds else [])

    def conflicts_with(self, stored: SweepSpec) -> list[str]:
        """Why this spec can neither resume nor extend a store written for `stored`: what it drops or changes
        (what it only adds is no conflict); empty when it can."""
        if self.adaptive or stored.adaptive:
            return self.compatible_with(stored)
        dropped = {name: sorted(set(getattr(stored, name)) - set(getattr(self, name))) for name in LIST_AXES}
        out = [f"{name}: this spec drops {values}" for name, values in dropped.items() if values]
        if self.seeds < stored.seeds:
            out.append(f"seeds: this spec has fewer ({self.seeds} < {stored.seeds})")
        elif self.seeds > stored.seeds and self.search.curve_points:
            out.append("seeds: more seeds with curve points (a cell's curve loads follow the median over its seeds)")
        same_axes = {name: getattr(stored, name) for name in ("problems", "solvers", "rhos", "ds", "seeds")}
        try:
            narrowed = dataclasses.replace(self, **same_axes)
        except InvalidInput as exc:  # this spec's other settings cannot hold the stored axes
            return out + [f"its settings do not hold the stored cells ({exc})"]
        return out + narrowed.compatible_with(stored)


def validate(spec: SweepSpec) -> None:
    """Raise InvalidInput listing every bad value of the spec; return quietly when it is valid."""
    problems = spec_problems(spec)
    if problems:
        raise InvalidInput("invalid sweep spec: " + "; ".join(problems))



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


def spec_from_dict(raw: dict) -> SweepSpec:
    """A validated spec from a `to_dict`-shaped dict; every problem reported in one InvalidInput."""
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
    d_max = d_max_pairs(raw.get("d_max", {}))
    tables = {name: selectors.pairs(raw.get(name, {})) for name in ("seeds_for", "resolution_for")}
    errors += field_problems(**fields, seeds=seeds, device=device, d_max=d_max, adaptive=adaptive,
                              replaced=replaced)
    if errors:
        raise InvalidInput("invalid sweep spec: " + "; ".join(errors))
    return SweepSpec(**fields, seeds=seeds, solver_settings=solver_settings, search=search, device=device,
                     d_max=d_max, adaptive=adaptive, shards=shards, **tables)
