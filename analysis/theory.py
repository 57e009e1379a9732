"""Every prediction of THEORY.md as code: capacities, finite-size predictions, spectra (numpy/scipy only)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize, special

from lamcap.kernels.errors import InvalidInput

ALPHA_HEBBIAN = 0.125  # THEORY.md 3.5
DEFAULT_SAMPLES = 20000  # Monte Carlo samples of G_p per p: standard error ~0.2% of E[G_p]
TOP_STATISTICS = 64  # order statistics sampled per G_p sample; doubled for a p where it is not enough
_GRID_SMALL = 16  # the p grid is every integer up to this, then geometric
_GRID_RATIO = 1.2
_GRID_MAX = 10**9


# ---------------------------------------------------------------- validation
def _check_rho(rho: float) -> float:
    if not (isinstance(rho, (int, float, np.integer, np.floating)) and 0.0 < float(rho) <= 1.0):
        raise InvalidInput(f"rho {rho!r} is not in (0, 1]")
    return float(rho)


def _check_d(d: int) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer, float, np.floating)) \
            or d != int(d) or d < 2:
        raise InvalidInput(f"d {d!r} is not an integer >= 2")
    return int(d)


def _check_p(p, minimum: float = 2.0) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < minimum):
        raise InvalidInput(f"p {p!r} has a value below {minimum:g} (or not finite)")
    return arr


# ---------------------------------------------------------------- load
def p_to_alpha(p, d):
    """The load alpha = p ln p / d^2 (numpy-vectorised in p and d)."""
    p = _check_p(p, 1.0)
    d = np.asarray(d, dtype=float)
    if np.any(d < 2):
        raise InvalidInput(f"d {d!r} has a value below 2")
    out = p * np.log(p) / d**2
    return float(out) if out.ndim == 0 else out


def alpha_to_p(alpha: float, d: int) -> float:
    """The real p >= 1 solving p ln p = alpha d^2, i.e. p = alpha d^2 / W(alpha d^2)."""
    d = _check_d(d)
    if not (math.isfinite(alpha) and alpha > 0):
        raise InvalidInput(f"alpha {alpha!r} is not a positive number")
    x = alpha * d * d
    return float(x / special.lambertw(x).real)


def extreme_value_threshold(p) -> np.ndarray:
    """sqrt(2 ln p), the leading-order maximum of p standard Gaussians."""
    return np.sqrt(2.0 * np.log(_check_p(p)))


# ---------------------------------------------------------------- quarter circle and kappa
def _quarter_circle_tail(s: float) -> float:
    """Mass of the quarter-circle law sqrt(4 - s^2) / pi above s, for s in [0, 2]."""
    return 1.0 - (s * math.sqrt(4.0 - s * s) / 2.0 + 2.0 * math.asin(s / 2.0)) / math.pi


@lru_cache(maxsize=None)
def lower_edge(rho: float) -> float:
    """s_rho: the quarter-circle law puts mass rho above it (s_1 = 0)."""
    rho = _check_rho(rho)
    if rho == 1.0:
        return 0.0
    return float(optimize.brentq(lambda s: _quarter_circle_tail(s) - rho, 0.0, 2.0, xtol=1e-14))


@lru_cache(maxsize=None)
def kappa(rho: float) -> float:
    """Share of a Gaussian matrix's squared Frobenius norm in its top rho d singular values (THEORY.md 3.3)."""
    # integral of s^2 sqrt(4 - s^2) / pi over [s_rho, 2], done in closed form with s = 2 sin(theta)
    theta0 = math.asin(lower_edge(rho) / 2.0)
    return (math.pi - 2.0 * theta0 + math.sin(4.0 * theta0) / 2.0) / math.pi


def alpha_c(rho: float) -> float:
    """Asymptotic capacity of the rank-rho d memory, kappa(rho) / 2 (alpha_c(1) = 1/2)."""
    return kappa(rho) / 2.0


def truncated_quarter_circle_pdf(s, rho) -> np.ndarray:
    """Density of the singular values (top scaled to 2) of the optimal weights at capacity (eq. 10)."""
    rho = _check_rho(rho)
    s = np.asarray(s, dtype=float)
    inside = (s >= lower_edge(rho)) & (s <= 2.0)
    return np.where(inside, np.sqrt(np.clip(4.0 - s * s, 0.0, None)) / (math.pi * rho), 0.0)


# ---------------------------------------------------------------- G_p (THEORY.md 3.1)
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
    geo = np.round(_GRID_SMALL * _GRID_RATIO ** np.arange(1, n_geo + 1)).astype(np.int64)
    return tuple(range(2, _GRID_SMALL + 1)) + tuple(sorted(set(geo.tolist())))


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
    xs = np.log([grid[i] for i in idx])
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
    """(p*, alpha_c^RS(d; rho)) of THEORY.md 3.2: p* solves p* E[G_p*] = kappa(rho) d^2."""
    d, rho = _check_d(d), _check_rho(rho)
    return _finite_size(d, rho, *_check_samples(n_samples, seed))


# ---------------------------------------------------------------- Hebbian (THEORY.md 3.5)
def hebbian_target_mean(p: float, d: int) -> float:
    """m, the normalised target-score mean: m^2 = d^4 / (p d^2 + 2 d^3)."""
    return d / math.sqrt(p + 2.0 * d)


def hebbian_log_success(p: float, d: int) -> float:
    """ln P(all p rows stored) = p ln(integral phi(t - m) Phi(t)^(p-1) dt), for real p >= 1."""
    d, p = _check_d(d), float(_check_p(p, 1.0))
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
    return _hebbian_finite_size(_check_d(d))


def predicted_critical_p(d: int, rho: float, kind: str) -> float:
    """Theory's critical p for a cell: kind 'optimal' (p* of 3.2) or 'hebbian' (3.5, rank-independent)."""
    if kind == "optimal":
        return finite_size_prediction(d, rho)[0]
    if kind == "hebbian":
        _check_rho(rho)
        return hebbian_finite_size(d)[0]
    raise InvalidInput(f"kind {kind!r} is not 'optimal' or 'hebbian'")


# ---------------------------------------------------------------- two-layer init (THEORY.md 3.4)
def two_layer_init_squared_pdf(x, rho) -> np.ndarray:
    """Density of the squared non-zero singular values (mean 1) of W = A B at init: -(1/pi) Im g(x + i0)."""
    rho = _check_rho(rho)
    x = np.asarray(x, dtype=float)
    flat = x.ravel()
    out = np.zeros_like(flat)
    pos = flat > 0
    xs = flat[pos]
    # g (1 - rho + rho x g)^2 = x g - 1  <=>  (rho x)^2 g^3 + 2 (1 - rho) rho x g^2 + ((1 - rho)^2 - x) g + 1 = 0
    lead = (rho * xs) ** 2
    companion = np.zeros((xs.size, 3, 3))
    companion[:, 0, 0] = -2.0 * (1.0 - rho) * rho * xs / lead
    companion[:, 0, 1] = -((1.0 - rho) ** 2 - xs) / lead
    companion[:, 0, 2] = -1.0 / lead
    companion[:, 1, 0] = companion[:, 2, 1] = 1.0
    imag = np.abs(np.linalg.eigvals(companion).imag).max(axis=1) if xs.size else np.zeros(0)
    # Outside the support the three roots are real; round-off near a double root leaves ~sqrt(eps).
    out[pos] = np.where(imag > 1e-7 * (1.0 + np.abs(xs)), imag / math.pi, 0.0)
    return out.reshape(x.shape)


def two_layer_init_pdf(s, rho) -> np.ndarray:
    """Density of the non-zero singular values s of W = A B at init (mean of s^2 is 1): 2 s f(s^2)."""
    s = np.asarray(s, dtype=float)
    return np.where(s > 0, 2.0 * s * two_layer_init_squared_pdf(s * s, rho), 0.0)
