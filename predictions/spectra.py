"""Singular-value densities: of the optimal weights at capacity (truncated quarter circle) and of the two-layer
W = A B at initialisation (free product of two Marchenko-Pastur laws), docs/THEORY.md section 3.4."""
from __future__ import annotations

import math

import numpy as np

from lamcap.predictions.capacity import lower_edge
from lamcap.predictions.validation import check_rho


def truncated_quarter_circle_pdf(s, rho) -> np.ndarray:
    """Density of the singular values (top scaled to 2) of the optimal weights at capacity (eq. 10)."""
    rho = check_rho(rho)
    s = np.asarray(s, dtype=float)
    inside = (s >= lower_edge(rho)) & (s <= 2.0)
    return np.where(inside, np.sqrt(np.clip(4.0 - s * s, 0.0, None)) / (math.pi * rho), 0.0)



def two_layer_init_squared_pdf(x, rho) -> np.ndarray:
    """Density of the squared non-zero singular values (mean 1) of W = A B at init: -(1/pi) Im g(x + i0)."""
    rho = check_rho(rho)
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
