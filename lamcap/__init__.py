"""lamcap: how many facts can a linear associative memory store?

The Python face of the `lamcap` command, for notebooks and scripts::

    import lamcap
    record = lamcap.trial("dp", d=16, alpha=0.8, solver="adam")      # one probe: solve + verify
    report = lamcap.sweep("demo", "demo.zarr")                         # thresholds on an embedded Ray
    store = lamcap.open_store("demo.zarr")                             # two xarray Datasets
    result = lamcap.analyze("demo.zarr", out="figures/")               # tables and figures
    lamcap.theory(rho=[1, 0.5], d=[8, 64])                             # every prediction of the paper
    lamcap.plan("demo", workers=2).device_hours                        # what a sweep will cost

The layers are subpackages: `lamcap.kernels` (PyTorch: disorder, fused loss, verification,
solvers), `lamcap.orchestrator` (spec, search, Ray workers, scheduler, store, CLI) and
`lamcap.analysis` (theory, thresholds, fits, figures). `import lamcap` itself loads none of
torch, Ray or xarray; each function imports what it needs when called.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

API = ("trial", "sweep", "open_store", "analyze", "theory", "load_spec", "plan")
__all__ = [*API, "__version__"]


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lamcap")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(import_module("lamcap.api"), name)
    raise AttributeError(f"module 'lamcap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
