"""The statistics the adaptive learners decide on: seed spread, the variance of a median, a fit's intercept.

Pure (standard library only). Per-seed thresholds alpha* are noisy and quantised (p* is an integer),
and a cell has few seeds, so each cell's spread is shrunk towards the spread pooled over all cells
and never taken below the quantisation of alpha at that cell.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Sequence

from lamcap.predictions.units import alpha_to_p

PRIOR_DF = 2.0  # the pooled spread counts as this many degrees of freedom in each cell's estimate


def finite(values: Sequence[float]) -> list[float]:
    """The finite values, in order (a seed without a threshold is NaN)."""
    return [float(v) for v in values if math.isfinite(v)]


def median_variance_factor(n: int) -> float:
    """Var(median of n) / sigma^2 for Gaussian seeds: 1 / n up to n = 2 (the median is the mean), then
    (pi/2) / (n + pi/2 - 1): within 15% of the exact value from n = 3 on (2% at odd n; an even n's median
    averages the two middle values and is a little better), pi / (2 n) for large n. It decreases with n,
    so one more seed always looks useful."""
    if n < 1:
        raise ValueError(f"n={n!r} seeds: a median needs at least one")
    return 1.0 / n if n <= 2 else (math.pi / 2.0) / (n + math.pi / 2.0 - 1.0)


def quantisation_sd(alpha: float, d: int) -> float:
    """The spread a uniform rounding of p* to an integer gives alpha* near `alpha`: step / sqrt(12)."""
    p = max(2.0, alpha_to_p(max(alpha, 1e-12), d))
    step = ((p + 1.0) * math.log(p + 1.0) - p * math.log(p)) / (d * d)
    return step / math.sqrt(12.0)


def spreads(groups: dict[Hashable, tuple[Sequence[float], int]]) -> dict[Hashable, float]:
    """Per group (values, d): the seeds' standard deviation, shrunk towards the pooled one, floored by quantisation.

    sd^2 = ((n - 1) s^2 + PRIOR_DF s_pooled^2) / (n - 1 + PRIOR_DF), where s is the group's sample standard
    deviation and s_pooled pools every group with two values or more (0 when none has).
    """
    cleaned = {k: (finite(v), d) for k, (v, d) in groups.items()}
    dof = sum(len(v) - 1 for v, _ in cleaned.values() if len(v) >= 2)
    ss = sum(statistics.variance(v) * (len(v) - 1) for v, _ in cleaned.values() if len(v) >= 2)
    pooled = ss / dof if dof else 0.0
    out = {}
    for key, (values, d) in cleaned.items():
        n1 = max(len(values) - 1, 0)
        own = statistics.variance(values) if n1 else 0.0
        var = (n1 * own + PRIOR_DF * pooled) / (n1 + PRIOR_DF)
        floor = quantisation_sd(statistics.median(values), d) if values else 0.0
        out[key] = max(math.sqrt(var), floor)
    return out


def second_difference(xs: Sequence[float], ys: Sequence[float], vs: Sequence[float]) -> tuple[float, float]:
    """(c, var c): c = 2 f[x0, x1, x2], the second derivative of the parabola through three points, and
    its variance when the ys are independent with variances vs."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    w = (2.0 / ((x1 - x0) * (x2 - x0)), -2.0 / ((x1 - x0) * (x2 - x1)), 2.0 / ((x2 - x1) * (x2 - x0)))
    return w[0] * y0 + w[1] * y1 + w[2] * y2, sum(wi * wi * v for wi, v in zip(w, vs))


def intercept_sd(xs: Sequence[float], variances: Sequence[float]) -> float:
    """Standard deviation of the intercept of an unweighted least-squares line through (x_i, y_i).

    The intercept is sum_i w_i y_i with w_i = 1/n - xbar (x_i - xbar) / Sxx; with independent y_i of
    variances v_i its variance is sum_i w_i^2 v_i. Infinite with fewer than two distinct x.
    """
    n = len(xs)
    xbar = sum(xs) / n if n else 0.0
    sxx = sum((x - xbar) ** 2 for x in xs)
    if n < 2 or sxx <= 1e-300:
        return math.inf
    weights = [1.0 / n - xbar * (x - xbar) / sxx for x in xs]
    return math.sqrt(sum(w * w * v for w, v in zip(weights, variances)))


def z_value(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level (1.96 at 0.95)."""
    return statistics.NormalDist().inv_cdf((1.0 + level) / 2.0)
