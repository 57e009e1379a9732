"""The Hebbian memory W_H = sum_mu y_mu x_mu^T: its Gaussian score model, success probability and finite-size
capacity (docs/THEORY.md section 3.5). numpy and scipy only."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from scipy import integrate, optimize, special

from lamcap.predictions.hebbian_rank import cut_factors
from lamcap.predictions.validation import check_d, check_p, check_rho

ALPHA_HEBBIAN = 0.125  # the asymptotic Hebbian capacity


def hebbian_target_mean(p: float, d: int) -> float:
    """m, the normalised target-score mean: m^2 = d^4 / (p d^2 + 2 d^3)."""
    return d / math.sqrt(p + 2.0 * d)


def hebbian_log_success(p: float, d: int, rho: float = 1.0) -> float:
    """ln P(all p rows stored) = p ln(integral phi_h(t - g m) Phi(t)^(p-1) dt), for real p >= 1; at rho < 1 the
    target ~ N(g m, h^2) with the rank cut's factors (g, h) of lamcap.predictions.hebbian_rank."""
    d, p = check_d(d), float(check_p(p, 1.0))
    g, h = cut_factors(p, d, rho)
    m = g * hebbian_target_mean(p, d)

    def miss(t: float) -> float:  # density of the target at t, times P(max of p - 1 off-targets > t)
        return math.exp(-0.5 * ((t - m) / h) ** 2) / (h * math.sqrt(2 * math.pi)) * -math.expm1(
            (p - 1) * special.log_ndtr(t))

    edge = math.sqrt(2.0 * math.log(max(p, 2.0)))
    lo, hi = min(m, 0.0) - 12.0 * h, max(m, edge) + 12.0 * h
    fail, _ = integrate.quad(miss, lo, hi, points=sorted({m, edge}), epsabs=1e-15, epsrel=1e-11, limit=200)
    return p * math.log1p(-min(fail, 1.0 - 1e-16))


def hebbian_success_probability(p: float, d: int, rho: float = 1.0) -> float:
    """P(all p rows stored) in the independent-Gaussian Hebbian model (docs/THEORY.md 3.5.1)."""
    return math.exp(hebbian_log_success(p, d, rho))


def median_load(log_success: Callable[[float], float], d: int) -> float:
    """The real p >= 2 where ln P(all p rows stored) = ln(1/2) (2 if even p = 2 fails more often than not).

    The bracket starts at the asymptotic Hebbian p (alpha_H d^2 / ln p) and moves by factors of 2."""
    if log_success(2.0) < -math.log(2.0):
        return 2.0

    def log_excess(log_p: float) -> float:  # ln P(all stored) - ln(1/2), decreasing in p
        return log_success(math.exp(log_p)) + math.log(2.0)

    guess = max(math.log(2.0), math.log(ALPHA_HEBBIAN * d * d / max(1.0, 2.0 * math.log(d))))
    lo, hi = guess, guess + math.log(2.0)
    while log_excess(lo) < 0 and lo > math.log(2.0):
        lo, hi = max(math.log(2.0), lo - math.log(2.0)), lo
    while log_excess(hi) > 0:
        lo, hi = hi, hi + math.log(2.0)
    return math.exp(optimize.brentq(log_excess, lo, hi, xtol=1e-10))


@lru_cache(maxsize=4096)
def _hebbian_finite_size(d: int, rho: float) -> tuple[float, float]:
    p = median_load(lambda p: hebbian_log_success(p, d, rho), d)
    return p, float(p * math.log(p) / (d * d))


def hebbian_finite_size(d: int, rho: float = 1.0) -> tuple[float, float]:
    """(p, alpha) where the finite-size Hebbian model (OP; rank cut at rho < 1) stores all p rows with
    probability 1/2."""
    return _hebbian_finite_size(check_d(d), check_rho(rho))
