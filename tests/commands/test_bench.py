"""`lamcap bench kernel` holds one full-size competitor tensor at a time."""
from __future__ import annotations

import gc
import weakref

import pytest

from lamcap.commands import bench
from lamcap.kernels import competitors


@pytest.mark.parametrize("mode", ["materialize", "regenerate"])
def test_the_references_allocate_only_after_the_mode_let_go_of_its_competitors(monkeypatch, mode):
    sources, alive_at_references = [], []
    make_source = competitors.make_source

    def tracked(*args, **kwargs):
        source = make_source(*args, **kwargs)
        sources.append(weakref.ref(source))
        return source

    def references(instance, repeats, device):
        gc.collect()
        alive_at_references.extend(ref() is not None for ref in sources)
        return {"stream_seconds": 1.0, "randn_seconds": 1.0, "tensor_bytes": 0}

    monkeypatch.setattr(competitors, "make_source", tracked)
    monkeypatch.setattr(bench, "reference_times", references)
    bench.measure("dp", 4, 30, mode, repeats=1)
    assert alive_at_references == [False]
