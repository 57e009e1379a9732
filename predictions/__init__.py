"""The theory lamcap measures against, as numpy/scipy code (docs/THEORY.md): the load, capacities, finite-size
predictions, the Hebbian model and weight spectra. It knows nothing of torch, Ray or files; every layer may use it.

    from lamcap import predictions as theory
    theory.alpha_c(0.5)                         # asymptotic capacity of the rank-d/2 memory
    theory.finite_size_prediction(64, 1.0)      # (p*, alpha_c^RS) at d = 64
    theory.hebbian_prediction("dp", 64, 0.5)    # (p, alpha) of the Hebbian memory, DP, rank cut at d / 2
"""
from __future__ import annotations

from lamcap.errors import InvalidInput
from lamcap.predictions.capacity import (
    DEFAULT_SAMPLES,
    G_from_sorted,
    G_p,
    alpha_c,
    expected_G,
    extreme_value_threshold,
    finite_size_prediction,
    kappa,
    lower_edge,
)
from lamcap.predictions.hebbian import (
    ALPHA_HEBBIAN,
    hebbian_finite_size,
    hebbian_log_success,
    hebbian_success_probability,
    hebbian_target_mean,
)
from lamcap.predictions.hebbian_dp import hebbian_dp_finite_size, hebbian_dp_log_success
from lamcap.predictions.hebbian_rank import cut_factors
from lamcap.predictions.large_p import expected_G_expansion, finite_size_prediction_expansion
from lamcap.predictions.spectra import truncated_quarter_circle_pdf, two_layer_init_pdf, two_layer_init_squared_pdf
from lamcap.predictions.units import alpha_of, alpha_to_p, p_to_alpha, rank_of
from lamcap.predictions.validation import check_rho

KINDS = ("optimal", "hebbian")
PROBLEMS = ("op", "dp")


def hebbian_asymptote(rho: float = 1.0) -> float:
    """The d -> infinity Hebbian capacity of the rank-rho d memory, kappa(rho) / 8 (1/8 at full rank)."""
    return kappa(check_rho(rho)) * ALPHA_HEBBIAN


def hebbian_prediction(problem: str, d: int, rho: float = 1.0) -> tuple[float, float]:
    """(p, alpha) where the Hebbian memory of `problem` stores all rows with probability 1/2: OP's Gaussian
    model (docs/THEORY.md 3.5.1) or DP's exact row law (3.5.2), with the rank cut at rho < 1 (3.5.3)."""
    if problem == "op":
        return hebbian_finite_size(d, rho)
    if problem == "dp":
        return hebbian_dp_finite_size(d, rho)
    raise InvalidInput(f"problem {problem!r} is not 'op' or 'dp'")


def predicted_critical_p(d: int, rho: float, kind: str, problem: str = "op") -> float:
    """Theory's critical p for a cell: kind 'optimal' (the finite-size p*, the same for both problems) or
    'hebbian' (where the `problem`'s Hebbian memory stores all rows with probability 1/2, rank cut included)."""
    if kind == "optimal":
        return finite_size_prediction(d, rho)[0]
    if kind == "hebbian":
        return hebbian_prediction(problem, d, check_rho(rho))[0]
    raise InvalidInput(f"kind {kind!r} is not 'optimal' or 'hebbian'")


__all__ = ["ALPHA_HEBBIAN", "DEFAULT_SAMPLES", "KINDS", "PROBLEMS", "G_from_sorted", "G_p", "alpha_c", "alpha_of",
           "alpha_to_p", "cut_factors", "expected_G", "expected_G_expansion", "extreme_value_threshold",
           "finite_size_prediction", "finite_size_prediction_expansion", "hebbian_asymptote",
           "hebbian_dp_finite_size", "hebbian_dp_log_success", "hebbian_finite_size", "hebbian_prediction",
           "hebbian_log_success", "hebbian_success_probability", "hebbian_target_mean", "kappa", "lower_edge",
           "p_to_alpha", "predicted_critical_p", "rank_of", "truncated_quarter_circle_pdf", "two_layer_init_pdf",
           "two_layer_init_squared_pdf"]
