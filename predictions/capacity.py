"""The capacity of the optimal memory: the quarter-circle share kappa(rho), alpha_c(rho) = kappa(rho) / 2, the
balance function G_p and the finite-size replica-symmetric prediction p* E[G_p*] = kappa(rho) d^2
(docs/THEORY.md sections 3.1-3.3). numpy and scipy only."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, special

from lamcap.errors import InvalidInput
from lamcap.predictions.validation import check_d, check_p, check_rho

DEFAULT_SAMPLES = 20000  # Monte Carlo samples of G_p per p: standard error ~0.2% of E[G_p]
TOP_STATISTICS = 64  # order statistics sampled per G_p sample; doubled for a p where it is not enough
_GRID_SMALL = 16  # the p grid is every integer up to this, then geometric
_GRID_RATIO = 1.2
_GRID_MAX = 10**24  # p* of d ~ 10^12: the order statistics are exact at any p, so the grid can reach that far


def extreme_value_threshold(p) -> np.ndarray:
    """sqrt(2 ln p), the leading-order maximum of p standard Gaussians."""
    return np.sqrt(2.0 * np.log(check_p(p)))


# ---------------------------------------------------------------- quarter circle and kappa
def _quarter_circle_tail(s: float) -> float:
    """Mass of the quarter-circle law sqrt(4 - s^2) / pi above s, for s in [0, 2]."""
    return 1.0 - (s * math.sqrt(4.0 - s * s) / 2.0 + 2.0 * math.asin(s / 2.0)) / math.pi


@lru_cache(maxsize=None)
def lower_edge(rho: float) -> float:
    """s_rho: the quarter-circle law puts mass rho above it (s_1 = 0)."""
    rho = check_rho(rho)
    if rho == 1.0:
        return 0.0
    return float(optimize.brentq(lambda s: _quarter_circle_tail(s) - rho, 0.0, 2.0, xtol=1e-14))


@lru_cache(maxsize=None)
def kappa(rho: float) -> float:
    """Share of a Gaussian matrix's squared Frobenius norm in its top rho d singular values (docs/THEORY.md 3.3)."""
    # integral of s^2 sqrt(4 - s^2) / pi over [s_rho, 2], done in closed form with s = 2 sin(theta)
    theta0 = math.asin(lower_edge(rho) / 2.0)
    return (math.pi - 2.0 * theta0 + math.sin(4.0 * theta0) / 2.0) / math.pi


def alpha_c(rho: float) -> float:
    """Asymptotic capacity of the rank-rho d memory, kappa(rho) / 2 (alpha_c(1) = 1/2)."""
    return kappa(rho) / 2.0



# ---------------------------------------------------------------- G_p (docs/THEORY.md 3.1)
def G_from_sorted(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """min_t>=0 [t^2 + sum_k (c_k - t)_+^2] per row of c (sorted decreasingly), and the active count K."""
    c = np.asarray(c, dtype=float)
    ranks = np.arange(1, c.shape[-1] + 1)
    sums = np.cumsum(c, axis=-1)
    # K is active iff c_K > t_K = (c_1 + ... + c_K) / (K + 1); the set of such K is a prefix.
    active = c > sums / (ranks + 1)
    count = active.sum(axis=-1)
    top_sum = np.take_along_axis(sums, np.maximum(count - 1, 0)[..., None], axis=-1)[..., 0]
    t = np.where(count > 0, top_sum / (count + 1), 0.0)
    excess = np.where(active, c - t[..., None], 0.0)
    return t * t + np.sum(excess * excess, axis=-1), count


def G_p(xi: np.ndarray) -> np.ndarray:
    """G_p of each row of xi (shape (..., p); xi[..., 0] is the target), by the sorting closed form."""
    xi = np.asarray(xi, dtype=float)
    if xi.shape[-1] < 2:
        raise InvalidInput(f"p {xi.shape[-1]!r} is below 2")
    c = -np.sort(-(xi[..., 1:] - xi[..., :1]), axis=-1)
    return G_from_sorted(c)[0]


@lru_cache(maxsize=8)
def _base_draws(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The target xi_1 and a uniform per sample, shared by every p (common random numbers)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_samples, 0]))
    return rng.standard_normal(n_samples), rng.random(n_samples)


@lru_cache(maxsize=32)
def _spacings(n_samples: int, seed: int, block: int) -> np.ndarray:
    """Block `block` of TOP_STATISTICS exponential spacings per sample; blocks nest, so any prefix is fixed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_samples, 1, block]))
    return rng.standard_exponential((n_samples, TOP_STATISTICS))


def _top_order_statistics(n: int, m: int, n_samples: int, seed: int) -> np.ndarray:
    """The m largest of n i.i.d. N(0, 1), decreasing, per sample: exact, via uniform spacings.

    The k-th largest has tail probability Gamma_k / Gamma_{n+1}, Gamma_k the partial sums of i.i.d.
    Exp(1); Gamma_{n+1} - Gamma_m ~ Gamma(n + 1 - m) is drawn by inversion of one shared uniform, so
    every sample is increasing in n (and E[G_p] estimates are monotone in p)."""
    blocks = [_spacings(n_samples, seed, b) for b in range(-(-m // TOP_STATISTICS))]
    gammas = np.cumsum(np.concatenate(blocks, axis=1)[:, :m], axis=1)
    _, uniform = _base_draws(n_samples, seed)
    total = gammas[:, -1] + special.gammaincinv(n + 1 - m, uniform)
    return -special.ndtri(gammas / total[:, None])


def _check_samples(n_samples: int, seed: int) -> tuple[int, int]:
    if int(n_samples) != n_samples or n_samples < 2:
        raise InvalidInput(f"n_samples {n_samples!r} is not an integer >= 2")
    if int(seed) != seed or seed < 0:
        raise InvalidInput(f"seed {seed!r} is not an integer >= 0")
    return int(n_samples), int(seed)


@lru_cache(maxsize=4096)
def _expected_G(p: int, n_samples: int, seed: int) -> tuple[float, float]:
    n, m = p - 1, min(TOP_STATISTICS, p - 1)
    xi1, _ = _base_draws(n_samples, seed)
    while True:
        g, count = G_from_sorted(_top_order_statistics(n, m, n_samples, seed) - xi1[:, None])
        if m == n or count.max() < m:  # the (m+1)-th largest was inactive in every sample
            break
        m = min(2 * m, n)
    return float(g.mean()), float(g.std(ddof=1) / math.sqrt(n_samples))


def expected_G(p: int, n_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo E[G_p] over n_samples draws: (mean, standard error). Seeded and cached."""
    if isinstance(p, (bool, np.bool_)) or int(p) != p or p < 2:
        raise InvalidInput(f"p {p!r} is not an integer >= 2")
    return _expected_G(int(p), *_check_samples(n_samples, seed))


@lru_cache(maxsize=1)
def _p_grid() -> tuple[int, ...]:
    """Integer p: all of 2.._GRID_SMALL, then geometric with ratio _GRID_RATIO up to _GRID_MAX."""
    n_geo = int(math.log(_GRID_MAX / _GRID_SMALL) / math.log(_GRID_RATIO)) + 1
    geo = {int(round(_GRID_SMALL * _GRID_RATIO**k)) for k in range(1, n_geo + 1)}  # Python ints: beyond int64
    return tuple(range(2, _GRID_SMALL + 1)) + tuple(sorted(geo))


def _solve_balance(target: float, n_samples: int, seed: int) -> float:
    """Real p solving p E[G_p] = target: bisection on the p grid, then a local cubic in (ln p, ln pE[G_p])."""
    grid = _p_grid()

    def log_balance(i: int) -> float:
        return math.log(grid[i] * _expected_G(grid[i], n_samples, seed)[0])

    lo, hi, goal = 0, len(grid) - 1, math.log(target)
    if log_balance(lo) >= goal:
        raise InvalidInput(f"kappa d^2 = {target:.4g} is below 2 E[G_2]: p* would be below 2")
    if log_balance(hi) < goal:
        raise InvalidInput(f"kappa d^2 = {target:.4g} needs p* above {grid[hi]}: d too large")
    while hi - lo > 1:  # p E[G_p] increases with p (exactly so for the common-random-number estimate)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if log_balance(mid) < goal else (lo, mid)
    idx = list(range(max(lo - 1, 0), min(hi + 2, len(grid))))
    xs = np.log([float(grid[i]) for i in idx])
    coef = np.polyfit(xs, [log_balance(i) for i in idx], len(idx) - 1)
    root = optimize.brentq(lambda x: np.polyval(coef, x) - goal, math.log(grid[lo]), math.log(grid[hi]),
                           xtol=1e-13)
    return float(math.exp(root))


@lru_cache(maxsize=4096)
def _finite_size(d: int, rho: float, n_samples: int, seed: int) -> tuple[float, float]:
    p_star = _solve_balance(kappa(rho) * d * d, n_samples, seed)
    # alpha_c^RS = kappa ln p* / E[G_p*] and E[G_p*] = kappa d^2 / p*, so alpha_c^RS = p* ln p* / d^2.
    return p_star, float(p_star * math.log(p_star) / (d * d))


def finite_size_prediction(d: int, rho: float = 1.0, n_samples: int = DEFAULT_SAMPLES,
                           seed: int = 0) -> tuple[float, float]:
    """(p*, alpha_c^RS(d; rho)) of docs/THEORY.md 3.2: p* solves p* E[G_p*] = kappa(rho) d^2."""
    d, rho = check_d(d), check_rho(rho)
    return _finite_size(d, rho, *_check_samples(n_samples, seed))
