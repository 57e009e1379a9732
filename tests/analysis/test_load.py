"""lamcap.analysis.load: decoding of categorical codes and clear errors for unusable stores."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from lamcap.analysis.load import decode, open_store
from lamcap.errors import InvalidInput
from lamcap.store.schema import PROBES
from tests.analysis.store_factory import synthetic_sweep, write_store


def test_decoded_labels_match_the_records_written(tmp_path):
    probes, thresholds = synthetic_sweep(ds=(8,), seeds=(0, 1), rng_seed=3)
    store = open_store(write_store(tmp_path / "s.zarr", probes, thresholds))
    for name in ("problem", "solver", "status", "device", "purpose"):
        assert store.probes[name].values.tolist() == [r[name] for r in probes], name
        assert "flag_values" not in store.probes[name].attrs
    assert store.thresholds.solver.values.tolist() == [r["solver"] for r in thresholds]
    np.testing.assert_array_equal(store.probes.p.values, [r["p"] for r in probes])
    assert store.spec == {"preset": "synthetic"}
    assert store.attrs["lamcap_schema"] == 2


def test_raw_codes_are_int8_with_cf_attributes(tmp_path):
    probes, thresholds = synthetic_sweep(ds=(8,), seeds=(0,))
    path = write_store(tmp_path / "s.zarr", probes, thresholds)
    raw = xr.open_zarr(path, group="probes", consolidated=False)
    assert raw.problem.dtype == np.int8
    assert raw.problem.attrs["flag_meanings"].split() == list(PROBES["problem"].categories)


def test_decode_rejects_a_code_outside_flag_values():
    ds = xr.Dataset({"solver": ("probe", np.array([0, 5], dtype="i1"),
                                {"flag_values": [0, 1], "flag_meanings": "adam hebbian"})})
    with pytest.raises(InvalidInput, match="solver.*5"):
        decode(ds)


def test_missing_store_names_the_path(tmp_path):
    with pytest.raises(InvalidInput, match="nowhere.zarr"):
        open_store(tmp_path / "nowhere.zarr")


def test_store_without_probes_is_empty(tmp_path):
    path = tmp_path / "empty.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3)
    with pytest.raises(InvalidInput, match="empty"):
        open_store(path)


def test_store_without_thresholds_is_reported_unless_allowed(tmp_path):
    probes, _ = synthetic_sweep(ds=(8,), seeds=(0,))
    path = write_store(tmp_path / "s.zarr", probes, [])
    with pytest.raises(InvalidInput, match="no thresholds"):
        open_store(path)
    store = open_store(path, require_thresholds=False)
    assert store.thresholds.sizes.get("threshold", 0) == 0
    assert store.probes.sizes["probe"] == len(probes)
