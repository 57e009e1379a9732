"""Every bad value of a sweep spec, each message naming it (all reported at once)."""
from __future__ import annotations

from typing import Any

from lamcap.kernels.settings import LP_MAX_D, SolverSettings
from lamcap.kernels.vocabulary import DEVICE_CHOICES, PROBLEMS, SOLVERS
from lamcap.orchestrator.spec import adaptive_rules
from lamcap.orchestrator.spec.adaptive_rules import AdaptiveRules
from lamcap.orchestrator.spec.d_caps import cap_for, cap_problems
from lamcap.orchestrator.spec.search import SearchSettings
from lamcap.orchestrator.spec.selectors import table_problems
from lamcap.orchestrator.spec.shard_rules import ShardRules
from lamcap.orchestrator.spec.values import is_int, is_real, list_problems


def d_max_pairs(value: Any) -> Any:
    """A dict or a sequence of (problem, d) pairs as a sorted tuple of pairs; anything else unchanged."""
    if isinstance(value, dict):
        value = list(value.items())
    if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return tuple(sorted((tuple(p) for p in value), key=repr))
    return value



def _lp_problems(solvers: Any, rhos: Any, ds: Any, d_max: Any = (), problems: Any = PROBLEMS,
                 adaptive_rho: bool = False) -> list[str]:
    """lp needs rho = 1 among the rhos (its only cells), no adaptive rank axis, and every d it runs within
    LP_MAX_D."""
    if not isinstance(solvers, (list, tuple)) or "lp" not in solvers:
        return []
    out = []
    real = [r for r in rhos if is_real(r)] if isinstance(rhos, (list, tuple)) else []
    if adaptive_rho:
        out.append("solver 'lp' with [adaptive.rho]: lp is full rank, a rank axis does not apply; "
                   "sweep lp in its own spec with rhos = [1.0]")
    elif real and 1 not in real:
        out.append(f"solver 'lp' needs rho = 1 among the rhos (lp is full rank: its cells exist at rho = 1 "
                   f"only), got rhos = {real}")
    caps = [cap_for(d_max, p, "lp", 1.0) if isinstance(d_max, tuple) else None
            for p in (problems if isinstance(problems, (list, tuple)) else PROBLEMS)]
    largest = None if None in caps else max(caps, default=None)  # the largest d an lp cell may have
    out += [f"d={d} with solver 'lp': lp handles d <= {LP_MAX_D} only (cap it with d_max.lp = {LP_MAX_D})"
            for d in (ds if isinstance(ds, (list, tuple)) else ())
            if is_int(d) and d > LP_MAX_D and (largest is None or d <= largest)]
    return out


def field_problems(problems: Any, solvers: Any, rhos: Any, ds: Any, seeds: Any, device: Any,
                    d_max: Any, adaptive: AdaptiveRules = AdaptiveRules(),
                    replaced: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every bad plain value of a spec, each message naming it.

    A list that an adaptive rule replaces is not checked (`replaced`: also when the rule itself was bad).
    """
    replaced = set(replaced) | adaptive_rules.replaced_keys({"adaptive": adaptive})
    out = list_problems("problems", problems, lambda v: v in PROBLEMS, f"is not a known problem {PROBLEMS}")
    out += list_problems("solvers", solvers, lambda v: v in SOLVERS, f"is not a known solver {SOLVERS}")
    if "rhos" not in replaced:
        out += list_problems("rhos", rhos, lambda r: is_real(r) and 0 < r <= 1, "must be a number in (0, 1]")
    if "ds" not in replaced:
        out += list_problems("ds", ds, lambda d: is_int(d) and d >= 2, "must be an integer >= 2")
    if not is_int(seeds) or seeds < 1:
        out.append(f"seeds={seeds!r} must be an integer >= 1")
    elif adaptive.d is not None and seeds < 2:
        out.append(f"seeds={seeds!r} with [adaptive.d]: the first round needs the seeds' spread, give seeds >= 2")
    if device not in DEVICE_CHOICES:
        out.append(f"device={device!r} is not one of {DEVICE_CHOICES}")
    rhos = [adaptive.rho.min, adaptive.rho.max] if adaptive.rho else rhos
    ds = list(adaptive.d.ladder) if adaptive.d else ds
    out += adaptive_rules.ladder_problems(adaptive, d_max)
    return out + cap_problems(d_max, PROBLEMS, SOLVERS, rhos, ds) + _lp_problems(
        solvers, rhos, ds, d_max, problems, adaptive.rho is not None)


def spec_problems(spec: Any) -> list[str]:
    """Every bad value of a spec, each message naming it (empty when valid)."""
    if not isinstance(spec.adaptive, AdaptiveRules):
        return [f"adaptive={spec.adaptive!r} must be an AdaptiveRules"]
    out = field_problems(spec.problems, spec.solvers, spec.rhos, spec.ds, spec.seeds, spec.device, spec.d_max,
                          spec.adaptive)
    given = {k: v for k, v in (("rhos", spec.rhos), ("ds", spec.ds)) if v}
    out += adaptive_rules.axis_problems({"adaptive": spec.adaptive, **given})
    if not isinstance(spec.search, SearchSettings):
        out.append(f"search={spec.search!r} must be a SearchSettings")
    if not isinstance(spec.solver_settings, SolverSettings):
        out.append(f"solver_settings={spec.solver_settings!r} must be a SolverSettings")
    if not isinstance(spec.shards, ShardRules):
        out.append(f"shards={spec.shards!r} must be a ShardRules")
    out += table_problems("seeds_for", spec.seeds_for, spec.seeds)
    out += table_problems("resolution_for", spec.resolution_for)
    if spec.adaptive and (spec.seeds_for or spec.resolution_for):
        out.append("[seeds_for] and [resolution_for] do not combine with an adaptive axis (its learners choose the "
                   "seeds); give one seeds and search.resolution for the whole sweep")
    return out
