"""Disorder: nested prefixes, block regeneration, determinism, and the spec's checks."""
from __future__ import annotations

import pytest
import torch

from lamcap.kernels.disorder import TILE_MU, TILE_NU, Instance, InstanceSpec, block_seed
from lamcap.kernels.errors import InvalidInput

P_SMALL, P_LARGE = 41, 41 + TILE_NU + 9  # the larger p crosses a tile boundary in both directions


@pytest.mark.parametrize("problem", ["op", "dp"])
def test_instance_for_p_is_a_prefix_of_the_instance_for_larger_p(problem):
    small = Instance(InstanceSpec(problem, 5, P_SMALL, seed=7))
    large = Instance(InstanceSpec(problem, 5, P_LARGE, seed=7))
    assert torch.equal(small.inputs, large.inputs[:P_SMALL])
    assert torch.equal(small.targets, large.targets[:P_SMALL])
    if problem == "op":
        assert torch.equal(small.shared_outputs, large.shared_outputs[:P_SMALL])
    else:  # each input's competitor list is a prefix of its longer list
        assert torch.equal(small.materialize(), large.materialize()[:P_SMALL, :P_SMALL])


def test_any_block_regenerates_alone_and_equals_the_materialised_one_bit_for_bit():
    instance = Instance(InstanceSpec("dp", 3, 300, seed=2))
    whole = instance.materialize()
    for mu0, mu1, nu0, nu1 in [(0, 300, 0, 300), (5, 70, 250, 300), (31, 33, 255, 257), (299, 300, 0, 1)]:
        block = instance.competitors(mu0, mu1, nu0, nu1)
        assert torch.equal(block, whole[mu0:mu1, nu0:nu1])
        assert torch.equal(instance.competitor_block(mu0, mu1, nu0, nu1), block.transpose(1, 2))


def test_targets_are_the_diagonal_of_the_competitors():
    for problem in ("op", "dp"):
        instance = Instance(InstanceSpec(problem, 4, TILE_MU * 3 + 5, seed=1))
        y = instance.materialize()
        diagonal = y if problem == "op" else y[torch.arange(instance.p), torch.arange(instance.p)]
        assert torch.equal(instance.targets, diagonal)


def test_same_spec_gives_identical_tensors_and_seeds_differ():
    a = Instance(InstanceSpec("dp", 6, 70, seed=11))
    b = Instance(InstanceSpec("dp", 6, 70, seed=11))
    c = Instance(InstanceSpec("dp", 6, 70, seed=12))
    assert torch.equal(a.materialize(), b.materialize()) and torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, c.inputs)
    # streams are independent: inputs are not the first competitors
    assert not torch.equal(a.inputs[:6], a.competitors(0, 1)[0, :6])


def test_entries_are_standard_gaussian():
    y = Instance(InstanceSpec("dp", 16, 200, seed=0)).materialize()
    assert abs(float(y.mean())) < 0.01 and abs(float(y.var()) - 1) < 0.01


def test_block_seeds_are_distinct_over_many_coordinates():
    seeds = {block_seed(s, stream, i, j) for s in range(4) for stream in (1, 2, 3) for i in range(20) for j in range(20)}
    assert len(seeds) == 4 * 3 * 20 * 20 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("kwargs,name", [
    (dict(problem="xp", d=4, p=5, seed=0), "problem"),
    (dict(problem="op", d=1, p=5, seed=0), "d=1"),
    (dict(problem="op", d=4, p=1, seed=0), "p=1"),
    (dict(problem="dp", d=4, p=5, seed=-1), "seed=-1"),
])
def test_bad_spec_names_the_value(kwargs, name):
    with pytest.raises(InvalidInput, match=name):
        InstanceSpec(**kwargs)


def test_out_of_range_block_is_refused():
    instance = Instance(InstanceSpec("dp", 3, 10, seed=0))
    with pytest.raises(IndexError):
        instance.competitors(0, 11)
