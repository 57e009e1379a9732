"""The Python API behind `import lamcap`: the same functions the `lamcap` command runs.

Every function validates its arguments before any work (InvalidInput naming the bad value),
imports torch, Ray and xarray only when called, and returns plain values or xarray objects:

    trial(problem, d, p | alpha=..., solver=..., ...) -> dict       one probe, its record
    sweep(spec, store, address=None, workers=None, progress=True)    thresholds on Ray, resumable
    open_store(path) -> Store                                        probes and thresholds as Datasets
    analyze(store, out=None) -> Report                               tables, fits and figures
    theory(rho=..., d=...) -> dict                                   the paper's predictions
    load_spec(spec) -> SweepSpec                                     a preset, TOML path or dict as a spec
    plan(spec, device=None, workers=None) -> Plan                    a sweep's cost per cell, before it runs
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamcap.kernels.errors import InvalidInput

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from lamcap.analysis.load import Store
    from lamcap.analysis.report import Analysis
    from lamcap.orchestrator.cost_model import CostModel
    from lamcap.orchestrator.plan import Plan
    from lamcap.orchestrator.scheduler import SweepReport
    from lamcap.orchestrator.spec import SweepSpec

THEORY_RHOS = (1.0, 0.75, 0.5, 0.25)
THEORY_DS = (8, 16, 32, 64, 128, 256)


# ---- one probe ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialPlan:
    """A validated trial: the instance, the rank, the solver settings and the resolved device."""

    spec: Any  # kernels.disorder.InstanceSpec
    rank: int
    solver: str
    settings: Any  # kernels.solvers.settings.SolverSettings
    device: str
    alpha_asked: float | None = None
    threads: int | None = None  # CPU threads asked for (None: lamcap.kernels.threads chooses)
    shards: int = 1  # devices (Ray actors of one placement group) the probe's inputs are split over
    address: str | None = None  # the Ray cluster a gang trial joins (None: an embedded Ray)


def _p_from(d: int, p: int | None, alpha: float | None) -> int:
    if (p is None) == (alpha is None):
        raise InvalidInput("give exactly one of p and alpha")
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, int) or p < 2:
            raise InvalidInput(f"p={p!r} must be an integer >= 2")
        return p
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha > 0):
        raise InvalidInput(f"alpha={alpha!r} must be a positive number")
    from lamcap.orchestrator.search import p_for_alpha

    return max(2, round(p_for_alpha(alpha, d)))


def _rank_from(d: int, rank: int | None, rho: float | None) -> int:
    if rank is not None and rho is not None:
        raise InvalidInput("give at most one of rank and rho")
    if rho is not None:
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (math.isfinite(rho) and 0 < rho <= 1):
            raise InvalidInput(f"rho={rho!r} is not in (0, 1]")
        return max(1, round(rho * d))
    rank = d if rank is None else rank
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= d:
        raise InvalidInput(f"rank={rank!r} is not in 1..d = 1..{d}")
    return rank


def plan_trial(problem: str, d: int, p: int | None = None, *, alpha: float | None = None,
               rank: int | None = None, rho: float | None = None, seed: int = 0, solver: str = "adam",
               steps: int | None = None, lr: float | None = None, device: str = "auto",
               mode: str = "auto", threads: int | None = None, shards: int = 1,
               address: str | None = None) -> TrialPlan:
    """Every check of a trial, before any work: values, the solver's limits, the device, the memory (of one
    shard), and for a gang (shards > 1 or an address) that the Ray cluster can ever place it."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import DEVICES, check_solvable, resolve_device
    from lamcap.kernels.solvers.settings import SolverSettings
    from lamcap.kernels.threads import choose_threads

    if isinstance(d, bool) or not isinstance(d, int) or d < 2:
        raise InvalidInput(f"d={d!r} must be an integer >= 2")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"seed={seed!r} must be a non-negative integer")
    spec = InstanceSpec(problem, d, _p_from(d, p, alpha), seed)
    r = _rank_from(d, rank, rho)
    changes = {k: v for k, v in (("max_steps", steps), ("lr", lr)) if v is not None}
    settings = dataclasses.replace(SolverSettings(mode=mode), **changes)
    check_solvable(spec, solver, r, shards)
    choose_threads(0.0, threads)  # checks a requested count
    gang = shards > 1 or address is not None
    if gang and threads is not None:
        raise InvalidInput("--threads applies to a trial in this process; the actors of a gang run one thread each")
    if device not in DEVICES:
        raise InvalidInput(f"unknown device {device!r}; expected one of {DEVICES}")
    resolved = resolve_device(device) if address is None else device  # a cluster's 'auto': decided once joined
    if gang:
        _check_gang_size(shards, resolved, address)
    if address is None:  # this machine is the device; a cluster's memory is checked once its actors say theirs
        check_memory(spec, r, solver, settings, resolved, shards=shards)
    return TrialPlan(spec, r, solver, settings, resolved, alpha, threads, shards, address)


def _check_gang_size(shards: int, device: str, address: str | None) -> None:
    """More shards than an embedded Ray could ever place are refused before Ray starts (a joined cluster is
    asked once joined: lamcap.orchestrator.gangs.run_gang_trial)."""
    if address is None:
        from lamcap.orchestrator.gangs import check_placeable, local_devices

        check_placeable(shards, device, local_devices(device))


def check_memory(spec: Any, rank: int, solver: str, settings: Any, device: str, *, shards: int = 1,
                 memory_bytes: int | None = None, gpu_memory: int | None = None) -> None:
    """InvalidInput with the estimate and the limit when one probe (one shard of it) cannot fit the device's
    memory (memory_bytes; default this process's device)."""
    from lamcap.kernels.budget import check_fits, gpu_total_memory, memory_limit_bytes, probe_memory

    memory = memory_limit_bytes(device) if memory_bytes is None else memory_bytes
    if device == "cuda" and gpu_memory is None:
        gpu_memory = gpu_total_memory()
    estimate = probe_memory(spec.problem, spec.d, spec.p, rank, solver, mode=settings.mode,
                            storage_dtype=settings.storage_dtype, device_type=device,
                            total_memory=gpu_memory if device == "cuda" else None,
                            memory_budget_bytes=settings.memory_budget_bytes, shards=shards)
    what = f"a {spec.problem} probe with d={spec.d}, p={spec.p} ({solver}, mode {estimate.mode}" + \
        (f", one of {shards} shards)" if shards > 1 else ")")
    check_fits(estimate, memory, what, device)


def trial_record(plan: TrialPlan, outcome: Any) -> dict:
    """The record of one trial: the instance, rank, solver, settings and the Outcome's fields."""
    spec = plan.spec
    return {"problem": spec.problem, "d": spec.d, "p": spec.p, "alpha": spec.p * math.log(spec.p) / spec.d ** 2,
            "rank": plan.rank, "rho": plan.rank / spec.d, "seed": spec.seed, "solver": plan.solver,
            "settings": dataclasses.asdict(plan.settings), **outcome.as_record()}


def run_trial(plan: TrialPlan, collective: Any = None) -> tuple[dict, Any]:
    """(record, verified W as a float64 CPU tensor) of a planned trial: here, or with a collective as one shard
    of a gang (inside a gang's actor), or for a plan with shards > 1 or an address on a gang of Ray actors."""
    from lamcap.kernels.sharding import SOLO
    from lamcap.kernels.solvers import solve_with_weights
    from lamcap.kernels.threads import step_work, use_threads

    if collective is None and (plan.shards > 1 or plan.address is not None):
        from lamcap.orchestrator.gangs import run_gang_trial

        return run_gang_trial(plan, plan.shards, plan.address)
    if plan.device == "cpu":
        use_threads(step_work(plan.spec.problem, plan.spec.d, plan.spec.p), plan.threads)

    outcome, w = solve_with_weights(plan.spec, plan.solver, plan.rank, plan.settings, plan.device,
                                    collective or SOLO)
    return trial_record(plan, outcome), w


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
    return run_trial(plan_trial(problem, d, p, alpha=alpha, rank=rank, rho=rho, seed=seed, solver=solver,
                                steps=steps, lr=lr, device=device, mode=mode, threads=threads, shards=shards,
                                address=address))[0]


# ---- sweeps --------------------------------------------------------------------------------------

def load_spec(spec: Any, **overrides: Any) -> SweepSpec:
    """A SweepSpec from a SweepSpec, a dict (keys of SweepSpec.to_dict, may name a `preset`), a preset
    name or a TOML path; `overrides` are flag-style keys (`ds=[8, 12]`, `seeds=2`, `lr=0.5`, ...)."""
    from lamcap.orchestrator import spec as specs
    from lamcap.orchestrator.presets import PRESETS

    if isinstance(spec, specs.SweepSpec):
        return specs.spec_from_layers(spec.to_dict(), {}, overrides) if overrides else spec
    if isinstance(spec, dict):
        raw = dict(spec)
        preset = raw.pop("preset", None)
        base = specs.preset_layer(preset)
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
          progress: bool = True, flush_seconds: float | None = None, **overrides: Any) -> SweepReport:
    """Search every (cell, seed)'s threshold on Ray into the Zarr store at `store`; return the report.

    `spec` as for `load_spec`. An existing store is resumed (its spec must agree); nothing already
    stored is recomputed. `address` joins a Ray cluster ('auto' or ray://...), else an embedded Ray
    runs on this machine. Everything is checked before Ray starts or the store is touched: the
    store's lock (one driver per store), its spec, integrity and writability, the device, and the
    memory every cell's probes need.
    """
    from lamcap.orchestrator.driver import execute

    sweep_spec = load_spec(spec, **overrides)
    store = os.fspath(store)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers={workers!r} must be an integer >= 1")
    if flush_seconds is not None and not (isinstance(flush_seconds, (int, float)) and math.isfinite(flush_seconds)
                                          and flush_seconds > 0):
        raise InvalidInput(f"flush_seconds={flush_seconds!r} must be a positive number")
    return execute(sweep_spec, store, address, workers, progress=progress, flush_seconds=flush_seconds)


# ---- reading and analysing stores ---------------------------------------------------------------

def open_store(path: str | os.PathLike, require_thresholds: bool = False) -> Store:
    """The store's committed rows: `.probes` (dim probe) and `.thresholds` (dim threshold) as xarray
    Datasets with labels decoded to strings, `.attrs` (spec, versions) and `.spec`."""
    from lamcap.analysis.load import open_store as _open

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


def analyze(store: str | os.PathLike, out: str | os.PathLike | None = None, *, level: float = 0.95,
            n_boot: int = 400) -> Report:
    """Thresholds with bootstrap intervals, finite-size fits, OP vs DP, mechanism tables and figures.

    With `out`, also writes summary.csv, fits.json and the PNG figures there (as `lamcap analyze`).
    """
    from lamcap.analysis.report import build_report

    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise InvalidInput(f"level={level!r} is not in (0, 1)")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise InvalidInput(f"n_boot={n_boot!r} is too small (need an integer >= 10)")
    result, text, figures, paths = build_report(os.fspath(store), None if out is None else os.fspath(out),
                                                level=level, n_boot=n_boot)
    return Report(result, text, figures, paths)


# ---- theory -------------------------------------------------------------------------------------

def theory(rho: float | Sequence[float] = THEORY_RHOS, d: int | Sequence[int] = THEORY_DS) -> dict:
    """The paper's predictions: asymptotic alpha_c(rho), finite-size p* and alpha_c^RS(d; rho), Hebbian.

    Returns {"alpha_hebbian", "asymptotic": [{rho, alpha_c}], "finite_size": [{rho, d, p_star,
    alpha_c_rs, p_hebbian, alpha_hebbian}]}, the object `lamcap theory --json` prints.
    """
    from lamcap.analysis import theory as th

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
            p_hebb, alpha_hebb = th.hebbian_finite_size(dim)
            finite.append({"rho": float(r), "d": dim, "p_star": p_star, "alpha_c_rs": alpha_rs,
                           "p_hebbian": p_hebb, "alpha_hebbian": alpha_hebb})
    return {"alpha_hebbian": th.ALPHA_HEBBIAN,
            "asymptotic": [{"rho": float(r), "alpha_c": th.alpha_c(float(r))} for r in rhos],
            "finite_size": finite}


# ---- planning -----------------------------------------------------------------------------------

def check_plannable(spec: SweepSpec) -> None:
    """Every cell can be placed by the theory and taken by its solver at its first probes (as `sweep` checks)."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import check_solvable
    from lamcap.orchestrator.plan import theory_p
    from lamcap.orchestrator.search import initial_bracket

    for cell in spec.cells():
        _, b = initial_bracket(theory_p(cell), spec.search.p_max)
        try:
            check_solvable(InstanceSpec(cell.problem, cell.d, b, 0), cell.solver, cell.rank)
        except InvalidInput as exc:
            raise InvalidInput(f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d}: {exc}") from None


def cost_model(spec: SweepSpec, device: str = "auto", repeats: int = 3, clock: str = "wall") -> CostModel:
    """Seconds per probe on `device`: calibrated here when the device exists, else the stated GPU model.

    Calibration times a few Adam steps, the setup, a verification and a whole Hebbian probe at a
    few sizes per problem and mode the spec's cells use (lamcap.orchestrator.plan.calibration_sizes),
    one thread. clock 'wall' (what this machine takes now) or, on a CPU, 'cpu' (the CPU time of
    that thread: what a free core takes, when other work shares this machine's cores).
    """
    import time

    import torch

    from lamcap.kernels.calibrate import Size, calibrate
    from lamcap.orchestrator import cost_model as cm
    from lamcap.orchestrator.plan import calibration_sizes

    if device not in ("cpu", "cuda", "auto"):
        raise InvalidInput(f"device={device!r} is not one of ('cpu', 'cuda', 'auto')")
    if clock not in cm.CLOCKS:
        raise InvalidInput(f"clock={clock!r} is not one of {cm.CLOCKS}")
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        return cm.stated_gpu_model()
    if device == "cpu":
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        budget = cm.CPU_BUDGET_BYTES
    else:
        memory = float(torch.cuda.get_device_properties(0).total_memory)
        budget = int(cm.CUDA_BUDGET_FRACTION * memory)
    sizes = [Size(problem, d, p, mode) for problem, d, p, mode in calibration_sizes(spec, budget)]
    start, cpu = time.perf_counter(), time.process_time()
    timings = calibrate(sizes, device, repeats)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    clock = "wall" if device == "cuda" else clock
    busy = f"; the calibration took {wall / cpu:.1f}x its CPU time: this machine is busy" if wall > 1.3 * cpu else ""
    source = (f"calibrated on this machine's {device} (1 thread, {len(sizes)} sizes, {wall:.0f} s; "
              f"{'wall clock' if clock == 'wall' else 'CPU time: as if the core were free'}{busy})")
    return cm.from_timings(timings, device, source, budget, clock, memory)


def plan(spec: Any, *, device: str | None = None, workers: int | None = None, model: CostModel | None = None,
         clock: str = "wall", **overrides: Any) -> Plan:
    """What a sweep will cost before it runs: per cell the p range, memory, mode, probes per threshold,
    seconds per probe and device-seconds; totals, and with `workers` a wall time.

    `spec` as for `load_spec`; `device` (default: the spec's) picks the model: calibrated on this
    machine when the device exists here, the stated GPU model for 'cuda' without a GPU (the plan's
    `source` says which). `clock` 'cpu' plans a CPU by the CPU time of the calibration, as if its
    cores were free (see `cost_model`). `model` skips calibration (a CostModel, e.g. from an earlier plan).
    """
    from lamcap.orchestrator.plan import plan_spec

    sweep_spec = load_spec(spec, **overrides)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers={workers!r} must be an integer >= 1")
    check_plannable(sweep_spec)
    if model is None:
        model = cost_model(sweep_spec, device or sweep_spec.device, clock=clock)
    return plan_spec(sweep_spec, model, workers)
