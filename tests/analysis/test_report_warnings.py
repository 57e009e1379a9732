"""Every figure of `lamcap analyze` from the test factory's stores, with warnings turned into errors."""
from __future__ import annotations

import pytest

from lamcap.analysis.report import FIGURES, build_report
from tests.analysis.store_factory import synthetic_sweep, write_store

ADAPTIVE = ("adaptive_rank", "adaptive_d")  # drawn from adaptive stores: tests/analysis/test_adaptive_report.py


@pytest.fixture(scope="module")
def store_with_oracle(tmp_path_factory) -> str:
    """The tiny sweep plus the exact lp oracle at rho = 1 (for the margin and gap figures)."""
    probes, rows = synthetic_sweep(ds=(8, 12), seeds=(0, 1, 2))
    lp_probes, lp_rows = synthetic_sweep(solvers=("lp",), rhos=(1.0,), ds=(8, 12), seeds=(0, 1, 2), rng_seed=1)
    return write_store(tmp_path_factory.mktemp("warn") / "oracle.zarr", probes + lp_probes, rows + lp_rows)


@pytest.mark.filterwarnings("error")
def test_every_figure_is_drawn_and_written_without_a_warning(store_with_oracle, tmp_path):
    result, _, drawn, paths = build_report(store_with_oracle, str(tmp_path / "out"), n_boot=20)
    assert set(drawn) == set(FIGURES) - set(ADAPTIVE), result.notes
    assert all((tmp_path / "out" / paths[name].split("/")[-1]).is_file() for name in drawn)
    assert not [n for n in result.notes if not n.startswith(tuple(f"figure {a}" for a in ADAPTIVE))]
