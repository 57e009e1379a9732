"""Named sweeps: `demo` (minutes on 2 CPU cores), `scale` (about 90 minutes on 2 CPU cores) and
`paper` (a multi-GPU cluster).

Each preset is a `SweepSpec.to_dict()`-shaped dict, so a TOML file or flags can override any
key of it (`lamcap.orchestrator.spec.load_spec`).
"""
from __future__ import annotations

import copy

from lamcap.errors import InvalidInput

PRESETS: dict[str, dict] = {
    # The demo of issue 5: both problems, both gradient and Hebbian memories, full and half rank,
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
    # Issue 10's measured curve beyond the paper's dimensions, for a machine of CPU cores: OP to
    # d = 128 and DP to d = 96 at full rank, both to d = 64 at rho = 0.5, Adam and Hebbian, 4 seeds,
    # and the exact oracle (lp, rho = 1) to d = 16, where a probe near threshold takes ~1 CPU second
    # (18 s at d = 24: benchmarks/lp.py). The resolution is the one for which `lamcap plan --preset
    # scale --workers 2 --clock cpu` predicts about 90-110 minutes on 2 free cores (0.01 would take
    # about 2.7 hours): searches stop at brackets of 5% of p (p* stays exact, a bracket of 1, only
    # below p = 40, i.e. at d = 8). No curve probes: the search probes already span the loads the figures
    # need, and a curve probe at d = 128 costs minutes. docs/results/scale/ holds the measured run.
    "scale": {
        "problems": ["op", "dp"],
        "solvers": ["adam", "hebbian", "lp"],
        "rhos": [1.0, 0.5],
        "ds": [8, 12, 16, 24, 32, 48, 64, 96, 128],
        "d_max": {"dp": 96, "rho=0.5": 64, "lp": 16},
        "seeds": 4,
        "device": "cpu",
        "solver_settings": {},
        "search": {"curve_points": 0, "resolution": 0.05},
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
