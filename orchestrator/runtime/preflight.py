"""Every check of a sweep before Ray starts or the store is written, each once, at the layer that owns it.

The spec itself was validated when it was built (lamcap.orchestrator.spec); here: every cell's solver can
take its first probes, an adaptive budget can pay for a fit, the driver's memory holds every search, the
store (if any) was written by a spec this one may resume or extend, is readable throughout, and replays
to the adaptive decisions it records; the [shards] gangs fit the pool; every cell's probes fit the
device's memory (which caps each search's p).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import check_fits, host_memory_bytes, human, largest_p, probe_memory
from lamcap.kernels.outcome import KERNEL, KERNEL_OF_GENERATOR
from lamcap.orchestrator.learners.expansion import (
    Expansion,
    cells_to_check,
    first_round_problems,
    max_searches,
    possible_cells,
)
from lamcap.orchestrator.learners.threshold import initial_bracket, theory_guess
from lamcap.orchestrator.planning.plan_cost import PlanCost
from lamcap.orchestrator.runtime.cluster import local_device
from lamcap.orchestrator.spec import Cell, SweepSpec
from lamcap.orchestrator.spec.shard_rules import AUTO, ShardPlan
from lamcap.orchestrator.spec.upgrades import upgrade_stored
from lamcap.store import reader
from lamcap.store.schema import DECISIONS, PROBES, THRESHOLDS, threshold_key

SEARCH_BYTES = 4096  # driver memory per (cell, seed): its learner, threshold row and probe keys


def check_cells(spec: SweepSpec) -> None:
    """Every cell's solver can take its first probes (lamcap.kernels.solvers.check_solvable); with an adaptive
    axis, the cells that stand for every cell its learners may choose (expansion.cells_to_check)."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import check_solvable

    for cell in cells_to_check(spec):
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        check_solvable(InstanceSpec(cell.problem, cell.d, b, 0), cell.solver, cell.rank)


def adaptive_cost(spec: SweepSpec) -> PlanCost | None:
    """The dimension learner's cost (the stated model of the sweep's device), None without [adaptive.d]."""
    if spec.adaptive.d is None:
        return None
    return PlanCost(spec, spec.device if spec.device in ("cpu", "cuda") else local_device(spec.device))


def check_budget(spec: SweepSpec) -> None:
    """InvalidInput when an adaptive dimension axis's budget cannot pay for the two rungs a fit needs."""
    problems = first_round_problems(spec, adaptive_cost(spec))
    if problems:
        raise InvalidInput("; ".join(problems) + " (raise the budget or start the ladder lower)")


def check_searches_fit(spec: SweepSpec) -> None:
    """The driver holds one search per (cell, seed): refuse a sweep whose searches cannot fit its memory
    (with an adaptive axis: the most its rules allow)."""
    searches = max_searches(spec)
    limit = host_memory_bytes() // 4
    if searches * SEARCH_BYTES > limit:
        raise InvalidInput(f"seeds={spec.seeds} gives up to {searches} searches, "
                           f"about {human(searches * SEARCH_BYTES)} of driver memory; this machine can give "
                           f"{human(limit)}: at most {limit // SEARCH_BYTES // max(1, len(spec.cells()))} seeds")


def shard_plan(spec: SweepSpec, pool_size: int, device: str, gpu_memory: int | None = None) -> ShardPlan:
    """The spec's [shards] rules for a pool of `pool_size` actors; InvalidInput when a rule asks for a gang
    larger than the pool can ever form."""
    for rule in spec.shards.rules:
        wanted = rule.k if rule.k != AUTO else rule.k_max
        if wanted is not None and wanted > pool_size:
            kind = "GPU" if device == "cuda" else "CPU"
            key = "k" if rule.k != AUTO else "k_max"
            raise InvalidInput(f"shards.{rule.problem}.{key}={wanted}: a gang needs {wanted} actors ({kind}s) at "
                               f"once; this sweep has {pool_size} (more --workers, or a smaller {key})")
    settings = spec.solver_settings
    return ShardPlan(spec.shards, spec.shards.gang_width(pool_size), device,
                     gpu_memory if device == "cuda" else None, settings.memory_budget_bytes, settings.storage_dtype)


def memory_caps(spec: SweepSpec, device: str, memory_bytes: int, gpu_memory: int | None = None,
                shards: ShardPlan | None = None) -> dict[Cell, int]:
    """Per cell (every cell an adaptive axis may choose too), the largest p whose probe (its largest shard, on
    the most shards `shards` allows the cell) fits `memory_bytes`; InvalidInput naming a cell whose first probes
    cannot fit (the estimate and the limit in the message). gpu_memory: the GPU's total memory, which sets a
    CUDA probe's competitor plan."""
    settings = spec.solver_settings
    kwargs = {"mode": settings.mode, "storage_dtype": settings.storage_dtype, "device_type": device,
              "total_memory": gpu_memory if device == "cuda" else None,
              "memory_budget_bytes": settings.memory_budget_bytes}

    def most(cell: Cell) -> int:
        return 1 if shards is None else shards.most(cell.problem, cell.d, cell.solver)

    for cell in cells_to_check(spec):
        k = most(cell)
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        estimate = probe_memory(cell.problem, cell.d, b, cell.rank, cell.solver, **kwargs, shards=k)
        on = f", one of {k} shards" if k > 1 else ""
        check_fits(estimate, memory_bytes, f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d} "
                                           f"(its first probes reach p={b}{on})", device)
    return {cell: largest_p(cell.problem, cell.d, cell.rank, cell.solver, memory_bytes, **kwargs, shards=most(cell))
            for cell in possible_cells(spec)}


AUTO_ACTORS_PER_GPU = (8, 4, 2)  # what `--actors-per-gpu auto` tries, most first


def check_actors_per_gpu(spec: SweepSpec, actors_per_gpu: int | str, joined: bool) -> None:
    """InvalidInput for a bad --actors-per-gpu, for 'auto' on a joined cluster (whose GPUs this machine cannot
    see before the actors start), and for K > 1 with sharded probes (a gang's ranks need whole GPUs)."""
    k = actors_per_gpu
    if k != "auto" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InvalidInput(f"--actors-per-gpu {k!r} must be an integer >= 1 or 'auto'")
    if k == "auto" and joined:
        raise InvalidInput("--actors-per-gpu auto reads this machine's GPU; on a joined cluster give a number "
                           "(lamcap plan --actors-per-gpu K prices each choice)")
    if k != 1 and spec.shards:
        raise InvalidInput(f"--actors-per-gpu {k}: this sweep's [shards] rules run probes on gangs, whose ranks need "
                           "whole GPUs; sweep the sharded cells in a store of their own with one actor per GPU")


def auto_actors_per_gpu(spec: SweepSpec, gpu_memory: int, cpus_per_gpu: int) -> int:
    """`--actors-per-gpu auto`: the most actors per GPU (8, 4 or 2, at most one CPU core each) whose share of
    `gpu_memory` holds every cell's largest first probe in the competitor mode it has on a whole GPU; 1 when no
    choice does."""
    for k in AUTO_ACTORS_PER_GPU:
        if k <= cpus_per_gpu and share_problems(spec, gpu_memory, k) == ([], []):
            return k
    return 1


def share_problems(spec: SweepSpec, gpu_memory: int, k: int) -> tuple[list[str], list[str]]:
    """(cells that cannot fit 1/k of `gpu_memory`, cells whose competitors 1/k of it would regenerate every step
    where a whole GPU holds them), each with the reason, from every cell's largest first probe."""
    settings = spec.solver_settings
    share = gpu_memory // k
    refused, slowed = [], []
    for cell in cells_to_check(spec):
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        whole, part = (probe_memory(cell.problem, cell.d, b, cell.rank, cell.solver, mode=settings.mode,
                                    storage_dtype=settings.storage_dtype, device_type="cuda", total_memory=memory,
                                    memory_budget_bytes=settings.memory_budget_bytes)
                       for memory in (gpu_memory, share))
        name = f"{cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d}"
        if part.total > share:
            refused.append(f"{name} (its probes at p={b} need about {part.describe()}; 1/{k} of the GPU is "
                           f"{human(share)})")
        elif part.mode != whole.mode:
            slowed.append(f"{name} (at p={b}, {human(share)} per actor)")
    return refused, slowed


def check_writable(path: str) -> None:
    """InvalidInput naming the path when the store (or the folder it would be created in) is not writable."""
    target = path if os.path.exists(path) else (os.path.dirname(os.path.abspath(path)) or ".")
    if not os.path.exists(target):
        raise InvalidInput(f"cannot create store {path!r}: folder {target!r} does not exist")
    if not os.path.isdir(target):
        raise InvalidInput(f"store {path!r} is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write store {path!r}: {target!r} is not writable (permission denied or a "
                           "read-only filesystem)")


def stored_spec(path: str | os.PathLike) -> SweepSpec:
    """The SweepSpec recorded in the store at `path` (read-only); InvalidInput if it is no lamcap store."""
    attrs = reader.root_attrs(path)
    try:
        raw = json.loads(attrs["spec"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise reader.damaged(f"{os.fspath(path)}/zarr.json", f"its spec attribute cannot be read ({exc})") from None
    try:
        return SweepSpec.from_dict(upgrade_stored(raw))
    except InvalidInput as exc:
        raise InvalidInput(f"store {os.fspath(path)!r} holds a spec this lamcap cannot read ({exc}); it was written "
                           "by another lamcap: sweep into a new store") from None


def check_compatible(path: str | os.PathLike, spec: SweepSpec) -> list[str]:
    """What `spec` adds to the existing store at `path` ([] for a resume; SweepSpec.additions_to); InvalidInput
    naming every difference if the store cannot take it."""
    path = os.fspath(path)
    stored = stored_spec(path)
    added = spec.additions_to(stored)
    if added is None:
        raise InvalidInput(f"store {path!r} was written by a different sweep: "
                           + "; ".join(spec.conflicts_with(stored))
                           + " (use another --store, the same spec to resume, or a spec that only adds "
                           "problems, solvers, rhos, ds or seeds to extend it)")
    return added


def check_kernel(path: str) -> None:
    """InvalidInput unless the store's probes were computed by this lamcap's kernel (KERNEL): a resume by code
    that computes probes differently would mix two kinds of records in one store. A store from before kernels
    were named is taken for the kernel its generator stands for (KERNEL_OF_GENERATOR), whose computation did
    not change when the name was introduced."""
    attrs = reader.root_attrs(path)
    stored = attrs.get("kernel") or unnamed_kernel(path)
    if stored != KERNEL:
        what = f"kernel {stored!r}" if stored else "a lamcap that did not name its kernel (before 0.2)"
        raise InvalidInput(f"store {path!r} was computed by {what}; this lamcap computes probes with kernel "
                           f"{KERNEL!r}: resuming would mix records computed differently (sweep into a new store; "
                           "lamcap analyze still reads this one)")


def unnamed_kernel(path: str) -> str | None:
    """The kernel of a store written before kernels were named: the one its probes' generator stands for, if they
    all name the same generator (None otherwise)."""
    probes = reader.read_table(path, PROBES)
    generators = {str(g) for g, s in zip(probes.columns["generator"], probes.columns["status"]) if s != "error"}
    return KERNEL_OF_GENERATOR.get(generators.pop()) if len(generators) == 1 else None


@dataclass
class StoreCheck:
    """What the pre-flight learnt of the store: the spec's additions to it, and the adaptive learners replayed
    from its thresholds (None without an adaptive axis), which the scheduler takes over."""

    added: list[str]
    expansion: Expansion | None


def check_store(path: str, spec: SweepSpec) -> StoreCheck:
    """Refuse (read-only) a store whose spec differs, which is damaged or not writable, or whose stored
    thresholds replay to other adaptive decisions than it records; a spec device 'auto' takes the store's."""
    check_writable(path)
    expansion = Expansion(spec, adaptive_cost(spec)) if spec.adaptive else None
    if not os.path.exists(path):
        if expansion is not None:
            expansion.start()
        return StoreCheck([], expansion)
    reader.check_readable(path)  # damage first: every metadata file and committed row reads
    check_kernel(path)
    if spec.device == "auto":
        spec = dataclasses.replace(spec, device=stored_spec(path).device)
    added = check_compatible(path, spec)
    if expansion is not None:
        rows = reader.read_records(path, THRESHOLDS)
        log = json.loads(reader.read_table(path, DECISIONS).group_attrs.get("log", "[]"))
        n = reader.read_table(path, DECISIONS).n
        expansion.resume({threshold_key(r): r for r in rows}, log[:n])
    return StoreCheck(added, expansion)
