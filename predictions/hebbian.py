"""The Hebbian memory W_H = sum_mu y_mu x_mu^T: its Gaussian score model, success probability and finite-size
capacity (docs/THEORY.md section 3.5). numpy and scipy only."""
from __future__ import annotations

import math
from functools import lru_cache

from scipy import integrate, optimize, special

from lamcap.predictions.validation import check_d, check_p

ALPHA_HEBBIAN = 0.125  # the asymptotic Hebbian capacity


def hebbian_target_mean(p: float, d: int) -> float:
    """m, the normalised target-score mean: m^2 = d^4 / (p d^2 + 2 d^3)."""
    return d / math.sqrt(p + 2.0 * d)


def hebbian_log_success(p: float, d: int) -> float:
    """ln P(all p rows stored) = p ln(integral phi(t - m) Phi(t)^(p-1) dt), for real p >= 1."""
    d, p = check_d(d), float(check_p(p, 1.0))
    m = hebbian_target_mean(p, d)

    def miss(t: float) -> float:  # phi(t - m) P(max of p - 1 off-targets > t)
        return math.exp(-0.5 * (t - m) ** 2) / math.sqrt(2 * math.pi) * -math.expm1((p - 1) * special.log_ndtr(t))

    edge = math.sqrt(2.0 * math.log(max(p, 2.0)))
    lo, hi = min(m, 0.0) - 12.0, max(m, edge) + 12.0
    fail, _ = integrate.quad(miss, lo, hi, points=sorted({m, edge}), epsabs=1e-15, epsrel=1e-11, limit=200)
    return p * math.log1p(-min(fail, 1.0 - 1e-16))


def hebbian_success_probability(p: float, d: int) -> float:
    """P(all p rows stored) in the independent-Gaussian Hebbian model (THEORY.md 3.5)."""
    return math.exp(hebbian_log_success(p, d))


@lru_cache(maxsize=4096)
def _hebbian_finite_size(d: int) -> tuple[float, float]:
    def log_excess(log_p: float) -> float:
        return hebbian_log_success(math.exp(log_p), d) + math.log(2.0)

    hi = math.log(2.0)
    while log_excess(hi) > 0:  # P is 1 at p = 1 and decreases in p
        hi += math.log(2.0)
    p = math.exp(optimize.brentq(log_excess, 0.0, hi, xtol=1e-12))
    return p, float(p * math.log(p) / (d * d))


def hebbian_finite_size(d: int) -> tuple[float, float]:
    """(p, alpha) where the finite-size Hebbian model stores all p rows with probability 1/2."""
    return _hebbian_finite_size(check_d(d))
