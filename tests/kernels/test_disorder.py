"""Disorder: nested prefixes, block regeneration in any pieces, the counter layout, and the spec's checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels import disorder
from lamcap.kernels.disorder import TILE_MU, TILE_NU, Instance, InstanceSpec, block_seed
from lamcap.kernels.gaussian import GENERATOR, Stream
from lamcap.kernels.outcome import GENERATORS
from tests.kernels.test_gaussian import reference_pairs

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


@pytest.mark.parametrize("piece_rows,piece_cols,mu1,nu1", [
    (1, 1, 9, 30), (3, 7, 40, 299), (5, 64, 40, 299), (32, 256, 40, 299), (7, 300, 40, 299)])
def test_a_block_is_the_same_however_its_generation_is_cut(piece_rows, piece_cols, mu1, nu1):
    """Emulates launch grids and chunkings: pieces of any shape (odd column offsets too) give the same bits."""
    instance = Instance(InstanceSpec("dp", 5, 300, seed=9))
    mu0, nu0 = 3, 1  # odd start: pieces begin inside a pair of competitors
    whole = instance.competitor_block(mu0, mu1, nu0, nu1)
    assembled = torch.empty_like(whole)
    for a in range(mu0, mu1, piece_rows):
        for b in range(nu0, nu1, piece_cols):
            a1, b1 = min(a + piece_rows, mu1), min(b + piece_cols, nu1)
            assembled[a - mu0 : a1 - mu0, :, b - nu0 : b1 - nu0] = instance.competitor_block(a, a1, b, b1)
    assert torch.equal(assembled, whole)
    rows = torch.cat([Instance(InstanceSpec("dp", 5, 300, seed=9))._rows(1, r, min(r + piece_rows, 300))
                      for r in range(0, 300, piece_rows)])
    assert torch.equal(rows, instance.inputs)


def test_entries_follow_the_documented_counter_layout():
    """Each entry is the generator's sample at its coordinates: the definition CPU and CUDA both compute."""
    seed, d, p = 4, 5, 9
    dp, op = Instance(InstanceSpec("dp", d, p, seed)), Instance(InstanceSpec("op", d, p, seed))

    def at(stream: int, counter: int, word: int) -> float:
        return float(reference_pairs(Stream.of(seed, stream), [counter])[word])

    for mu in (0, 3, 8):
        for k in range(d):
            assert dp.inputs[mu, k] == at(1, mu << 32 | k >> 1, k & 1)
            assert op.shared_outputs[mu, k] == at(2, mu << 32 | k >> 1, k & 1)
            for nu in (0, 1, 6):
                assert dp.competitors(mu, mu + 1, nu, nu + 1)[0, 0, k] == at(3, mu << 42 | k << 21 | nu >> 1, nu & 1)
            assert dp.targets[mu, k] == at(3, mu << 42 | k << 21 | mu >> 1, mu & 1)
    assert Instance.generator == GENERATOR and GENERATOR in GENERATORS


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


def test_entries_are_standard_gaussian_and_blocks_uncorrelated():
    instance = Instance(InstanceSpec("dp", 16, 200, seed=0))
    y = instance.materialize().double()
    assert abs(float(y.mean())) < 5 / y.numel() ** 0.5 and abs(float(y.var()) - 1) < 5 * (2 / y.numel()) ** 0.5
    flat = y.reshape(-1).numpy()
    bound = 5 / flat.size**0.5
    for a, b in [(y[:100], y[100:]), (y[:, :100], y[:, 100:]), (y[..., :8], y[..., 8:])]:  # inputs, candidates, k
        assert abs(np.corrcoef(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0, 1]) < 2 * bound
    x = instance.inputs.double().reshape(-1).numpy()
    assert abs(np.corrcoef(x, flat[: x.size])[0, 1]) < 5 / x.size**0.5  # streams: inputs vs competitors


def test_block_seeds_are_distinct_over_many_coordinates():
    seeds = {block_seed(s, stream, i, j)
             for s in range(4) for stream in (1, 2, 3) for i in range(20) for j in range(20)}
    assert len(seeds) == 4 * 3 * 20 * 20 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("kwargs,name", [
    (dict(problem="xp", d=4, p=5, seed=0), "problem"),
    (dict(problem="op", d=1, p=5, seed=0), "d=1"),
    (dict(problem="op", d=4, p=1, seed=0), "p=1"),
    (dict(problem="dp", d=4, p=5, seed=-1), "seed=-1"),
    (dict(problem="dp", d=disorder.MAX_D + 1, p=5, seed=0), f"d={disorder.MAX_D + 1}"),
    (dict(problem="dp", d=4, p=(1 << 22) + 1, seed=0), f"p={(1 << 22) + 1}"),
])
def test_bad_spec_names_the_value(kwargs, name):
    with pytest.raises(InvalidInput, match=name):
        InstanceSpec(**kwargs)


def test_out_of_range_block_is_refused():
    instance = Instance(InstanceSpec("dp", 3, 10, seed=0))
    with pytest.raises(IndexError):
        instance.competitors(0, 11)
