"""The torch path's shortcuts keep the instance's bits: sign tables for copysign, pieces, the CPU workspace.

The definition (lamcap.kernels.gaussian's docstring) copies x's sign onto the interpolated |z|; the torch
path looks the sign up in negated tables instead, generates large blocks PIECE_SAMPLES at a time and keeps
its temporaries in a per-thread workspace. Each must give the bits of the plain recipe.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lamcap.kernels import gaussian
from lamcap.kernels.disorder import Instance, InstanceSpec, slabs
from lamcap.kernels.gaussian import FRAC_BITS, tables, words_to_normal


def copysign_recipe(words: torch.Tensor) -> torch.Tensor:
    """Step 3 as the docstring states it: |z| from the table by |x|'s slot, then the sign copied from x."""
    a, b = (torch.from_numpy(t) for t in tables())
    x = (words | 1).float()
    bits = x.view(torch.int32)
    slot = (bits >> FRAC_BITS) & ((32 << 12) - 1)
    z = b[slot.long()] * (bits & ((1 << FRAC_BITS) - 1)).float()
    return torch.copysign(z + a[slot.long()], x)


def test_sign_tables_give_copysigns_bits_on_every_edge_and_many_words():
    edges = [0, 1, -1, -2, 2, 2**31 - 1, -(2**31), -(2**31) + 1, 2**30, -(2**30), 2**24 + 1, -(2**24) - 1]
    edges += [s * (2**31 - k) for s in (1, -1) for k in range(1, 200)]  # |x| rounds to 2^31: the signed zeros
    rng = np.random.default_rng(0)
    words = torch.cat([torch.tensor(edges, dtype=torch.int64).to(torch.int32),
                       torch.from_numpy(rng.integers(-(2**31), 2**31, 300_000).astype(np.int32))])
    got = words_to_normal(words.clone())
    assert torch.equal(got.view(torch.int32), copysign_recipe(words).view(torch.int32))
    zeros = got[: len(edges)][got[: len(edges)] == 0]
    assert (torch.signbit(zeros)).any() and (~torch.signbit(zeros)).any()  # both zeros occur, and match


@pytest.mark.parametrize("rows,mids,cols,most",
                         [(5, 4, 9, 36), (5, 4, 9, 35), (3, 4, 9, 10), (2, 3, 9, 4), (1, 1, 1, 1)])
def test_slabs_tile_the_array_once_within_the_size(rows, mids, cols, most):
    seen = np.zeros((rows, mids, cols), dtype=int)
    for a, k, c in slabs(rows, mids, cols, most):
        view = seen[a, k, c]
        assert 0 < view.size <= max(most, 1)
        view += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("piece", [1, 7, 50, 300, 5000])
def test_blocks_generated_in_pieces_have_the_one_piece_bits(monkeypatch, piece):
    instance = Instance(InstanceSpec("dp", 6, 41, seed=9))
    whole = [instance.competitor_block(*b) for b in ((0, 41), (3, 4, 5, 38), (40, 41, 1, 2))]
    inputs, targets = instance.inputs.clone(), instance.targets.clone()
    monkeypatch.setattr(gaussian, "PIECE_SAMPLES", piece)
    monkeypatch.setattr("lamcap.kernels.disorder.PIECE_SAMPLES", piece)
    fresh = Instance(InstanceSpec("dp", 6, 41, seed=9))
    for got, args in zip(whole, ((0, 41), (3, 4, 5, 38), (40, 41, 1, 2))):
        assert torch.equal(fresh.competitor_block(*args).view(torch.int32), got.view(torch.int32))
    assert torch.equal(fresh.inputs.view(torch.int32), inputs.view(torch.int32))
    assert torch.equal(fresh.targets.view(torch.int32), targets.view(torch.int32))


def test_the_workspace_is_reused_and_blocks_are_never_views_of_it():
    instance = Instance(InstanceSpec("dp", 5, 30, seed=1))
    first = instance.competitor_block(0, 4)
    kept = first.clone()
    second = instance.competitor_block(4, 8)  # the same workspace again
    assert torch.equal(first, kept) and first.data_ptr() != second.data_ptr()
    buffers = {id(t) for t in gaussian._WORKSPACE.buffers.values()}
    instance.competitor_block(8, 12)
    assert {id(t) for t in gaussian._WORKSPACE.buffers.values()} == buffers
