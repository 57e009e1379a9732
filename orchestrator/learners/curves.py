"""The extra loads of accuracy-vs-load curves: evenly spaced in alpha around a cell's median alpha*."""
from __future__ import annotations

import math

from lamcap.errors import InvalidInput
from lamcap.predictions.units import alpha_to_p

P_MIN = 2


def curve_loads(median_alpha: float, d: int, n: int, span: float) -> list[int]:
    """n distinct integer p (>= 2), evenly spaced over alpha in [median (1 - span), median (1 + span)].

    Fewer than n when that window holds fewer than n integers (small d); n = 1 gives the median p.
    """
    if isinstance(median_alpha, bool) or not isinstance(median_alpha, (int, float)) \
            or not math.isfinite(median_alpha) or median_alpha <= 0:
        raise InvalidInput(f"median_alpha={median_alpha!r} must be a positive finite number")
    if isinstance(d, bool) or not isinstance(d, int) or d < 2:
        raise InvalidInput(f"d={d!r} must be an integer >= 2")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInput(f"n={n!r} must be an integer >= 0")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not 0 < span < 1:
        raise InvalidInput(f"span={span!r} must be a number in (0, 1)")
    if n == 0:
        return []
    if n == 1:
        return [max(P_MIN, round(alpha_to_p(median_alpha, d)))]
    p_lo = max(P_MIN, math.ceil(alpha_to_p(median_alpha * (1 - span), d)))
    p_hi = math.floor(alpha_to_p(median_alpha * (1 + span), d))
    if p_hi - p_lo + 1 <= n:  # also [] when the window holds no p >= 2
        return list(range(p_lo, p_hi + 1))
    alphas = [median_alpha * (1 - span + 2 * span * i / (n - 1)) for i in range(n)]
    loads = sorted({min(p_hi, max(p_lo, round(alpha_to_p(a, d)))) for a in alphas})
    spare = (p for p in range(p_lo, p_hi + 1) if p not in loads)
    while len(loads) < n:  # rounding merged neighbours: fill with free integers of the window
        loads.append(next(spare))
    return sorted(loads)
