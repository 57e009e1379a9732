"""The sweep spec: cells and probes, the [search] settings, the whole SweepSpec with its validation, presets,
and the parsing of TOML files and flags. Torch-free and Ray-free: a spec is checked before either starts.

    from lamcap.orchestrator.spec import SweepSpec, load_spec
    spec = load_spec("examples/sweep.toml", overrides={"seeds": 2})
"""
from lamcap.orchestrator.spec.cells import Cell, Probe
from lamcap.orchestrator.spec.parse import load_spec, read_toml, spec_from_layers, to_toml
from lamcap.orchestrator.spec.search import SearchSettings
from lamcap.orchestrator.spec.sweep import SweepSpec

__all__ = ["Cell", "Probe", "SearchSettings", "SweepSpec", "load_spec", "read_toml", "spec_from_layers", "to_toml"]
