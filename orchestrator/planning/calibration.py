"""Time this machine's kernels at a few sizes a spec's cells use, and fit a cost model to them (`lamcap plan`).

Calibration times a few Adam steps, the setup, a verification and a whole Hebbian probe at a few sizes per
problem and mode the spec's cells use, one thread (what a sweep's CPU actor has); lamcap.kernels.calibrate
does the timing, `from_timings` the fit. Instances sit CAL_LOAD above the theory's p* (nothing converges in
the timed steps); at most CAL_SIZES dimensions per (problem, mode), none with more than CAL_MAX_ELEMENTS
p^2 d (a few seconds each).
"""
from __future__ import annotations

import functools
import os
import time

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import CUDA_BUDGET_FRACTION, DEFAULT_CPU_BUDGET_BYTES, competitor_mode
from lamcap.kernels.vocabulary import STORAGE_BYTES
from lamcap.orchestrator.learners.threshold import initial_bracket, theory_guess
from lamcap.orchestrator.planning.cost_model import CLOCKS, CostModel, from_timings
from lamcap.orchestrator.planning.stated import stated_gpu_model
from lamcap.orchestrator.spec import Cell, SweepSpec

CAL_LOAD = 1.2
CAL_SIZES = 4
CAL_MAX_ELEMENTS = {"op": 1e9, "materialize": 2.5e8, "regenerate": 2e7}
CAL_LADDER = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _subsample(ds: list[int], k: int) -> list[int]:
    """At most k of the sorted ds, the smallest and the largest included, spread evenly in between."""
    if len(ds) <= k:
        return ds
    return sorted({ds[round(i * (len(ds) - 1) / (k - 1))] for i in range(k)})


def _fits(p_at, problem: str, cap: float, d: int) -> bool:
    """Whether a (problem, d) probe at the calibration load stays under `cap` competitors."""
    return p_at(problem, d) ** 2 * d <= cap


def calibration_sizes(spec: SweepSpec, budget_bytes: int) -> list[tuple[str, int, int, str]]:
    """(problem, d, p, mode) to time: per (problem, mode) the spec's cells run in, up to CAL_SIZES
    of their dimensions at p = CAL_LOAD x the full-rank theory p*; a dimension too large to time
    quickly gives way to the largest ladder dimension below CAL_MAX_ELEMENTS."""
    storage = STORAGE_BYTES[spec.solver_settings.storage_dtype]
    budget = spec.solver_settings.memory_budget_bytes or budget_bytes
    groups: dict[tuple[str, str], set[int]] = {}
    for cell in spec.cells():
        if cell.solver == "lp":
            continue
        modes = {competitor_mode(cell.problem, cell.d, round(theory_guess(cell) * f), spec.solver_settings.mode,
                                 storage, budget)
                 for f in (0.85, 1.15)}
        for mode in modes:
            groups.setdefault((cell.problem, mode), set()).add(cell.d)

    def p_at(problem: str, d: int) -> int:
        return max(3, round(CAL_LOAD * theory_guess(Cell(problem, "adam", 1.0, d))))

    sizes = []
    for (problem, mode), ds in sorted(groups.items()):
        cap = CAL_MAX_ELEMENTS["op" if problem == "op" else mode]
        fits = functools.partial(_fits, p_at, problem, cap)
        chosen = {d if fits(d) else max([x for x in CAL_LADDER if x < d and fits(x)], default=8) for d in ds}
        if mode == "regenerate" and len(chosen) == 1:  # regenerate's rate is fitted, never extrapolated from one point
            chosen.add(max([x for x in CAL_LADDER if x < min(chosen)], default=min(chosen)))
        sizes += [(problem, d, p_at(problem, d), mode) for d in _subsample(sorted(chosen), CAL_SIZES)]
    return sizes


def check_plannable(spec: SweepSpec) -> None:
    """Every cell can be placed by the theory and taken by its solver at its first probes (as a sweep checks)."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import check_solvable

    for cell in spec.cells():
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        try:
            check_solvable(InstanceSpec(cell.problem, cell.d, b, 0), cell.solver, cell.rank)
        except InvalidInput as exc:
            raise InvalidInput(f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d}: {exc}") from None


def calibrated_model(spec: SweepSpec, device: str = "auto", repeats: int = 3, clock: str = "wall") -> CostModel:
    """Seconds per probe on `device`: calibrated here when the device exists, else the stated GPU model.

    clock 'wall' (what this machine takes now) or, on a CPU, 'cpu' (the CPU time of the timing thread: what a
    free core takes, when other work shares this machine's cores).
    """
    import torch

    from lamcap.kernels.calibrate import Size, calibrate, device_rates

    if device not in ("cpu", "cuda", "auto"):
        raise InvalidInput(f"device={device!r} is not one of ('cpu', 'cuda', 'auto')")
    if clock not in CLOCKS:
        raise InvalidInput(f"clock={clock!r} is not one of {CLOCKS}")
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        return stated_gpu_model()
    if device == "cpu":
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        budget = DEFAULT_CPU_BUDGET_BYTES
    else:
        memory = float(torch.cuda.get_device_properties(0).total_memory)
        budget = int(CUDA_BUDGET_FRACTION * memory)
    sizes = [Size(problem, d, p, mode) for problem, d, p, mode in calibration_sizes(spec, budget)]
    start, cpu = time.perf_counter(), time.process_time()
    timings = calibrate(sizes, device, repeats)
    rates = device_rates(device) if device == "cuda" else None  # a GPU's large steps: a roofline of its peaks
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    clock = "wall" if device == "cuda" else clock
    busy = f"; the calibration took {wall / cpu:.1f}x its CPU time: this machine is busy" if wall > 1.3 * cpu else ""
    source = (f"calibrated on this machine's {device} (1 thread, {len(sizes)} sizes, {wall:.0f} s; "
              f"{'wall clock' if clock == 'wall' else 'CPU time: as if the core were free'}{busy})")
    return from_timings(timings, device, source, budget, clock, memory, rates)
