"""What every figure shares: names, colours, panel grids, legends that never sit on data, and saving."""
from __future__ import annotations

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

PROBLEM_NAMES = {"op": "OP (shared outputs)", "dp": "DP (private competitors)"}
SOLVER_STYLE = {"adam": "-", "lp": ":", "hebbian": "--"}
SOLVER_ORDER = ("adam", "lp", "hebbian")
ALPHA_LABEL = "load α = p ln p / d²"


def ordered(values, preferred=("op", "dp")) -> list:
    """Distinct labels, the preferred ones first in their order, then the rest sorted."""
    values = list(dict.fromkeys(v.item() if hasattr(v, "item") else v for v in values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def colours(values) -> dict:
    """One viridis colour per value, in sorted order."""
    values = sorted(values)
    cmap = colormaps["viridis"]
    return {v: cmap(0.85 * i / max(len(values) - 1, 1)) for i, v in enumerate(values)}


def grid(n_rows: int, n_cols: int, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def unique_legend(ax, fontsize: float = 7, **kwargs) -> None:
    """The axes' legend with each label once (the first handle of a label wins); nothing when no labels."""
    first: dict = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        first.setdefault(label, handle)
    if first:
        ax.legend(list(first.values()), list(first), fontsize=fontsize, **kwargs)


def legend_outside(ax, fontsize: float = 7, ncols: int = 1) -> None:
    """The axes' legend (labels once) to the right of the axes: never over the data."""
    unique_legend(ax, fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  ncols=ncols)


def save(fig: Figure, path: str | os.PathLike) -> str:
    """Write a figure as PNG and return its path."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return os.fspath(path)
