"""A sweep spec from layers: a preset, then a TOML file, then flag overrides; and a spec back to TOML.

Precedence in `load_spec`: preset, then the file, then `overrides` (flags). Overrides are flat
or nested: `{"ds": [8], "lr": 0.1, "search": {"curve_points": 4}}`; `None` values are ignored
(unset flags), and the flag spellings `rho`, `d`, `steps` stand for `rhos`, `ds`, `max_steps`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from lamcap.errors import InvalidInput
from lamcap.kernels.settings import SolverSettings
from lamcap.orchestrator.spec import adaptive_rules, shard_rules
from lamcap.orchestrator.spec.presets import preset_dict
from lamcap.orchestrator.spec.search import SearchSettings
from lamcap.orchestrator.spec.sweep import SweepSpec, spec_from_dict

TABLES = ("solver_settings", "search", "d_max", "shards", "seeds_for", "resolution_for")  # merged key by key
FLAG_ALIASES = {"rho": "rhos", "d": "ds", "steps": "max_steps", "problem": "problems", "solver": "solvers"}


def _merge(base: dict, layer: dict) -> dict:
    """`layer` over `base`; the settings sections, d_max and the adaptive rules merge key by key."""
    axis_keys = {*adaptive_rules.AXES.values(), "adaptive"}  # a layer's list and rule of one axis replace each other
    out = adaptive_rules.merge(base, {k: v for k, v in layer.items() if k in axis_keys})
    for key, value in layer.items():
        if key in axis_keys:
            continue
        if key in TABLES and isinstance(value, dict) \
                and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def overrides_to_dict(overrides: dict) -> dict:
    """Flag values as a `to_dict`-shaped layer: None dropped, aliases resolved, flat settings routed."""
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
        elif isinstance(value, dict) and key in TABLES:
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
    tables = {k: raw.pop(k) for k in ("d_max", "seeds_for", "resolution_for", "solver_settings", "search") if k in raw}
    lines = [f"{k} = {_toml_value(v)}" for k, v in raw.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    lines += adaptive_rules.toml_tables(spec.adaptive, _toml_value)
    lines += shard_rules.toml_lines(spec.shards, _toml_value)
    return "\n".join(lines) + "\n"


def preset_layer(preset: str | None) -> dict:
    """The named preset's dict ({} for None); InvalidInput naming an unknown preset."""
    return preset_dict(preset) if preset is not None else {}


def spec_from_layers(base: dict, layer: dict, overrides: dict | None = None) -> SweepSpec:
    """A validated spec from a base dict (a preset), a file-shaped layer over it, then flag overrides."""
    raw = _merge(base, layer)
    raw = _merge(raw, overrides_to_dict(overrides or {}))
    return spec_from_dict(raw)


def load_spec(path: str | None = None, preset: str | None = None, overrides: dict | None = None) -> SweepSpec:
    """A validated spec: a preset, then the TOML file (which may name its own `preset`), then flags."""
    layer = read_toml(path) if path is not None else {}
    named = layer.pop("preset", None)
    if preset is not None and named is not None and named != preset:
        raise InvalidInput(f"--preset {preset!r} contradicts preset = {named!r} in {path!r}")
    return spec_from_layers(preset_layer(preset if preset is not None else named), layer, overrides)
