"""Named sweeps: `demo` (minutes on 2 CPU cores), `scale` and `scale-lp` (the measured curve on CPU cores:
`lamcap plan --preset scale` prices them) and `paper` (a multi-GPU cluster).

Each preset is a `SweepSpec.to_dict()`-shaped dict, so a TOML file or flags can override any
key of it (`lamcap.orchestrator.spec.load_spec`).
"""
from __future__ import annotations

import copy

from lamcap.errors import InvalidInput

PRESETS: dict[str, dict] = {
    # The demo: both problems, both gradient and Hebbian memories, full and half rank,
    # d up to 24, 3 seeds; a few curve loads per cell for the accuracy-vs-alpha figure. Adam's
    # settings are the kernels' defaults, lp at rho = 1 to d = 16. `lamcap demo` took 400 s on 2 cores
    # (d = 32 as well would add about 2.5 minutes: too close to the 10 minutes `make demo` may take on a
    # fresh machine, install included).
    "demo": {
        "problems": ["op", "dp"],
        "solvers": ["adam", "hebbian", "lp"],
        "rhos": [1.0, 0.5],  # lp runs at rho = 1 only
        "ds": [8, 12, 16, 24],
        "d_max": {"lp": 16},  # the exact oracle's probes near threshold: ~1 s at d = 16, ~20 s at d = 24
        "seeds": 3,
        "device": "auto",
        "solver_settings": {},
        "search": {"curve_points": 3},
    },
    # The measured capacity curve beyond the paper's dimensions on a machine of CPU cores (docs/results/scale):
    # exact per-seed thresholds (resolution 0) of Adam and Hebbian memories, OP and DP, full and half rank, to
    # d = 64; 8 seeds to d = 24 (paired with the exact oracle's, preset `scale-lp`), 4 from d = 32 on.
    "scale": {
        "problems": ["op", "dp"],
        "solvers": ["adam", "hebbian"],
        "rhos": [1.0, 0.5],
        "ds": [8, 12, 16, 24, 32, 48, 64],
        "seeds": 8,
        "seeds_for": {"d>=32": 4},
        "device": "cpu",
        "solver_settings": {},
        "search": {"curve_points": 0, "resolution": 0.0},
    },
    # The exact oracle (lp, full rank) on the same seeds as `scale`, to d = 32, where one probe near the
    # threshold takes 2-3 CPU minutes: the optimizer gap p*(adam) / p*(lp) per seed. A store of its own, so
    # that it never depends on Adam's settings; `lamcap analyze` reads both stores together.
    "scale-lp": {
        "problems": ["op", "dp"],
        "solvers": ["lp"],
        "rhos": [1.0],
        "ds": [8, 12, 16, 24, 32],
        "seeds": 8,
        "seeds_for": {"d>=32": 4},
        "device": "cpu",
        "solver_settings": {},
        "search": {"curve_points": 0, "resolution": 0.0},
    },
    # The paper's sweep, sized for a multi-GPU cluster: dp stops at d = 256 (its p^2 d competitors
    # are regenerated from the seed past the memory budget), op goes on to d = 512.
    "paper": {
        "problems": ["op", "dp"],
        "solvers": ["adam", "hebbian"],
        "rhos": [1.0, 0.75, 0.5, 0.25],
        "ds": [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512],
        "d_max": {"dp": 256},
        "seeds": 8,
        "device": "auto",
        "solver_settings": {},
        "search": {"curve_points": 8},
    },
}


def preset_dict(name: str) -> dict:
    """A fresh copy of the named preset's dict; InvalidInput naming an unknown preset."""
    if name not in PRESETS:
        raise InvalidInput(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
