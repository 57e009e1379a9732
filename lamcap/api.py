"""The Python API behind `import lamcap`: the same functions the `lamcap` command runs.

Every function validates its arguments before any work (InvalidInput naming the bad value),
imports torch, Ray and xarray only when called, and returns plain values or xarray objects:

    trial(problem, d, p | alpha=..., solver=..., ...) -> dict       one probe, its record
    sweep(spec, store, address=None, workers=None, progress=True)    thresholds on Ray, resumable
    open_store(path) -> Store                                        probes and thresholds as Datasets
    analyze(store | [stores], out=None) -> Report                    tables, fits and figures
    theory(rho=..., d=...) -> dict                                   the paper's predictions
    load_spec(spec) -> SweepSpec                                     a preset, TOML path or dict as a spec
    plan(spec, device=None, workers=None) -> Plan                    a sweep's cost per cell, before it runs
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamcap.errors import InvalidInput

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from lamcap.analysis.load import Store
    from lamcap.analysis.report import Analysis
    from lamcap.orchestrator.planning.cost_model import CostModel
    from lamcap.orchestrator.planning.plan import Plan
    from lamcap.orchestrator.runtime.scheduler import SweepReport
    from lamcap.orchestrator.spec import SweepSpec

THEORY_RHOS = (1.0, 0.75, 0.5, 0.25)
THEORY_DS = (8, 16, 32, 64, 128, 256)


# ---- one probe ---------------------------------------------------------------------------------

def run_trial(plan: Any) -> tuple[dict, Any]:
    """(record, verified W as a float64 CPU tensor) of a planned trial (lamcap.orchestrator.runtime.trial):
    in this process, or for a plan with shards > 1 or a cluster's address on a gang of Ray actors."""
    if plan.shards > 1 or plan.address is not None:
        from lamcap.orchestrator.runtime.gang_trial import run_gang_trial

        return run_gang_trial(plan, plan.shards, plan.address)
    from lamcap.orchestrator.runtime.trial import solve_trial

    return solve_trial(plan)


def trial(problem: str, d: int, p: int | None = None, *, alpha: float | None = None, rank: int | None = None,
          rho: float | None = None, seed: int = 0, solver: str = "adam", steps: int | None = None,
          lr: float | None = None, device: str = "auto", mode: str = "auto", threads: int | None = None,
          shards: int = 1, address: str | None = None) -> dict:
    """Build one instance, solve it with `solver`, verify it in float64; return its record.

    `p` or `alpha` (the integer p nearest to p ln p = alpha d^2); `rank` or `rho` (default full
    rank). The record holds the instance, the settings and every field of kernels.outcome.Outcome
    (`sat`, `status`, `accuracy`, `min_margin`, score statistics, `singular_values`, ...).
    A probe that cannot fit the device's memory is refused before anything is allocated. On the
    CPU, `threads` (default: lamcap.kernels.threads.choose_threads) sets torch's thread count.
    `shards` > 1 splits the inputs over a gang of that many Ray actors (one device each) on an embedded
    Ray, or on the cluster at `address`; the record's `shards` says how many ran it.
    """
    from lamcap.orchestrator.runtime.trial import plan_trial

    return run_trial(plan_trial(problem, d, p, alpha=alpha, rank=rank, rho=rho, seed=seed, solver=solver,
                                steps=steps, lr=lr, device=device, mode=mode, threads=threads, shards=shards,
                                address=address))[0]


# ---- sweeps --------------------------------------------------------------------------------------

def load_spec(spec: Any, **overrides: Any) -> SweepSpec:
    """A SweepSpec from a SweepSpec, a dict (keys of SweepSpec.to_dict, may name a `preset`), a preset
    name or a TOML path; `overrides` are flag-style keys (`ds=[8, 12]`, `seeds=2`, `lr=0.5`, ...)."""
    from lamcap.orchestrator import spec as specs
    from lamcap.orchestrator.spec.parse import preset_layer
    from lamcap.orchestrator.spec.presets import PRESETS

    if isinstance(spec, specs.SweepSpec):
        return specs.spec_from_layers(spec.to_dict(), {}, overrides) if overrides else spec
    if isinstance(spec, dict):
        raw = dict(spec)
        preset = raw.pop("preset", None)
        base = preset_layer(preset)
        return specs.spec_from_layers(base, raw, overrides)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text in PRESETS:
            return specs.load_spec(None, text, overrides)
        if os.path.isdir(text):
            raise InvalidInput(f"sweep spec {text!r} is a directory, not a TOML file")
        if not os.path.exists(text):
            raise InvalidInput(f"sweep spec {text!r} is neither a preset {sorted(PRESETS)} nor an existing file")
        return specs.load_spec(text, None, overrides)
    raise InvalidInput(f"a sweep spec must be a SweepSpec, a dict, a preset name or a TOML path; got {spec!r}")


def sweep(spec: Any, store: str | os.PathLike, *, address: str | None = None, workers: int | None = None,
          progress: bool = True, flush_seconds: float | None = None, ray_logs: bool = False,
          actors_per_gpu: int | str = 1, **overrides: Any) -> SweepReport:
    """Search every (cell, seed)'s threshold on Ray into the Zarr store at `store`; return the report.

    `spec` as for `load_spec`. An existing store is resumed (its spec must agree); nothing already
    stored is recomputed. `address` joins a Ray cluster ('auto' or ray://...), else an embedded Ray
    runs on this machine. Everything is checked before Ray starts or the store is touched: the
    store's lock (one driver per store), its spec, integrity and writability, the device, and the
    memory every cell's probes need. `ray_logs` shows Ray's own log lines too (they stay in Ray's log files
    otherwise); lamcap's messages go through `logging` (logger 'lamcap'). `actors_per_gpu` K runs K probe
    actors on each GPU, each planning and allocating with 1/K of its memory ('auto': the most that keep every
    cell's competitor mode, from this machine's GPU); each probe records its share.
    """
    from lamcap.orchestrator.runtime.driver import execute

    if not isinstance(store, (str, os.PathLike)):
        raise InvalidInput(f"store={store!r} must be a path (a str or os.PathLike) of the Zarr store to write or "
                           "resume")
    sweep_spec = load_spec(spec, **overrides)
    store = os.fspath(store)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers={workers!r} must be an integer >= 1")
    if flush_seconds is not None and not (isinstance(flush_seconds, (int, float)) and math.isfinite(flush_seconds)
                                          and flush_seconds > 0):
        raise InvalidInput(f"flush_seconds={flush_seconds!r} must be a positive number")
    return execute(sweep_spec, store, address, workers, progress=progress, flush_seconds=flush_seconds,
                   ray_logs=ray_logs, actors_per_gpu=actors_per_gpu)


# ---- reading and analysing stores ---------------------------------------------------------------

def open_store(path: str | os.PathLike, require_thresholds: bool = False) -> Store:
    """The store's committed rows: `.probes` (dim probe) and `.thresholds` (dim threshold) as xarray
    Datasets with labels decoded to strings, `.attrs` (spec, versions) and `.spec`."""
    from lamcap.analysis.load import open_store as _open

    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInput(f"path={path!r} must be the path (a str or os.PathLike) of a lamcap store")
    return _open(path, require_thresholds=require_thresholds)


@dataclass
class Report:
    """What `analyze` found: the derived tables, the printable text, the figures and where they went."""

    analysis: Analysis
    text: str
    figures: dict[str, Figure] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # name -> file written (empty when out is None)

    @property
    def thresholds(self) -> pandas.DataFrame:
        """One row per cell: median alpha* with its interval, seeds, theory."""
        import pandas as pd

        from lamcap.analysis.report import summary_rows

        return pd.DataFrame(summary_rows(self.analysis.summary))

    @property
    def notes(self) -> list[str]:
        """Parts the store could not support, and why."""
        return self.analysis.notes

    def __str__(self) -> str:
        return self.text


def analyze(store: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
            level: float = 0.95, n_boot: int = 400) -> Report:
    """Thresholds with bootstrap intervals, finite-size fits, OP vs DP, mechanism tables and figures.

    `store` is one path or a list of paths analysed together (a cell two stores share is refused unless their
    records agree: docs/STORE.md). With `out`, also writes summary.csv, fits.json and the PNG figures there
    (as `lamcap analyze`).
    """
    from lamcap.analysis.report import build_report

    if isinstance(store, (str, os.PathLike)):
        stores: str | list[str] = os.fspath(store)
    elif isinstance(store, Sequence) and store and all(isinstance(s, (str, os.PathLike)) for s in store):
        stores = [os.fspath(s) for s in store] if len(store) > 1 else os.fspath(store[0])
    else:
        raise InvalidInput(f"store={store!r} must be the path of a lamcap store or a non-empty list of them")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise InvalidInput(f"level={level!r} is not in (0, 1)")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise InvalidInput(f"n_boot={n_boot!r} is too small (need an integer >= 10)")
    result, text, figures, paths = build_report(stores, None if out is None else os.fspath(out),
                                                level=level, n_boot=n_boot)
    return Report(result, text, figures, paths)


# ---- theory -------------------------------------------------------------------------------------

def theory(rho: float | Sequence[float] = THEORY_RHOS, d: int | Sequence[int] = THEORY_DS) -> dict:
    """The paper's predictions: asymptotic alpha_c(rho) and Hebbian kappa(rho)/8, finite-size p* and
    alpha_c^RS(d; rho), and per problem the Hebbian memory's finite-size p and alpha (rank cut included).

    Returns {"alpha_hebbian", "asymptotic": [{rho, alpha_c, alpha_hebbian}], "finite_size": [{rho, d, p_star,
    alpha_c_rs, p_hebbian_op, alpha_hebbian_op, p_hebbian_dp, alpha_hebbian_dp}]}, what `lamcap theory --json`
    prints.
    """
    from lamcap import predictions as th

    rhos = [rho] if isinstance(rho, (int, float)) else list(rho)
    ds = [d] if isinstance(d, int) else list(d)
    for r in rhos:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (math.isfinite(r) and 0.0 < r <= 1.0):
            raise InvalidInput(f"rho={r!r} is not in (0, 1]")
    for dim in ds:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise InvalidInput(f"d={dim!r} must be an integer >= 2")
    finite = []
    for r in rhos:
        for dim in ds:
            p_star, alpha_rs = th.finite_size_prediction(dim, float(r))
            row = {"rho": float(r), "d": dim, "p_star": p_star, "alpha_c_rs": alpha_rs}
            for problem in th.PROBLEMS:
                p_hebb, alpha_hebb = th.hebbian_prediction(problem, dim, float(r))
                row |= {f"p_hebbian_{problem}": p_hebb, f"alpha_hebbian_{problem}": alpha_hebb}
            finite.append(row)
    return {"alpha_hebbian": th.ALPHA_HEBBIAN,
            "asymptotic": [{"rho": float(r), "alpha_c": th.alpha_c(float(r)),
                            "alpha_hebbian": th.hebbian_asymptote(float(r))} for r in rhos],
            "finite_size": finite}


# ---- planning -----------------------------------------------------------------------------------

def cost_model(spec: Any, device: str = "auto", repeats: int = 3, clock: str = "wall") -> CostModel:
    """Seconds per probe on `device`: calibrated here when the device exists, else the stated GPU model
    (lamcap.orchestrator.planning.calibration)."""
    from lamcap.orchestrator.planning.calibration import calibrated_model

    return calibrated_model(load_spec(spec), device, repeats, clock)


def plan(spec: Any, *, device: str | None = None, workers: int | None = None, model: CostModel | None = None,
         clock: str = "wall", actors_per_gpu: int = 1, **overrides: Any) -> Plan:
    """What a sweep will cost before it runs: per cell the p range, memory, mode, probes per threshold,
    seconds per probe and device-seconds; totals, and with `workers` a wall time.

    `spec` as for `load_spec`; `device` (default: the spec's) picks the model: calibrated on this
    machine when the device exists here, the stated GPU model for 'cuda' without a GPU (the plan's
    `source` says which). `clock` 'cpu' plans a CPU by the CPU time of the calibration, as if its
    cores were free (see `cost_model`). `model` skips calibration (a CostModel, e.g. from an earlier plan).
    `actors_per_gpu` K: K probes share each device, each with 1/K of its memory and of its throughput where
    the device binds (`workers` then counts actors).
    """
    from lamcap.orchestrator.planning.calibration import calibrated_model, check_plannable
    from lamcap.orchestrator.planning.plan import plan_spec

    sweep_spec = load_spec(spec, **overrides)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers={workers!r} must be an integer >= 1")
    check_plannable(sweep_spec)
    if model is None:
        model = calibrated_model(sweep_spec, device or sweep_spec.device, clock=clock)
    return plan_spec(sweep_spec, model, workers, share=actors_per_gpu)
