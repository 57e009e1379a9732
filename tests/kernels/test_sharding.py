"""Sharded probes against unsharded ones: the row split, the shards' sums, and whole solves on Gloo gangs.

The gang runs are real torch.distributed process groups (Gloo, 127.0.0.1) in spawned processes
(tests/kernels/gloo_gang.py), one gang of 2 and one of 3 (an uneven split) per test session; the
reference is the unsharded solve in this process. W may differ in the order of float32 sums only:
verdicts, steps and violations must be equal, W equal to 1e-5 relative.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels import budget, verify
from lamcap.kernels.competitors import make_source
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.sharding import Shard, check_shards, largest_shard, shard_rows
from lamcap.kernels.solvers import check_solvable, solve_with_weights
from tests.kernels.gloo_gang import run_gang
from tests.kernels.test_stopping import check_stopping_gang, stopping_gang_work

# (problem, d, p, seed, solver, rank, mode, max_steps, small blocks): SAT and UNSAT, OP and DP, both
# modes, a two-layer W, the Hebbian rule; "small" walks many chunks per shard and verifies in blocks
# of a few competitors, so that chunks and blocks start inside shards.
CASES = [
    ("dp", 8, 18, 0, "adam", 8, "materialize", 300, False),
    ("dp", 8, 30, 1, "adam", 8, "regenerate", 60, True),
    ("op", 8, 21, 2, "adam", 8, "materialize", 300, False),
    ("op", 8, 31, 3, "adam", 8, "materialize", 150, True),
    ("dp", 6, 16, 4, "adam", 3, "materialize", 300, True),
    ("dp", 8, 25, 5, "hebbian", 8, "auto", 1, False),
]


def _solve(case: tuple, collective=None) -> tuple[dict, np.ndarray]:
    problem, d, p, seed, solver, rank, mode, steps, small = case
    settings = SolverSettings(max_steps=steps, mode=mode)
    saved = verify.BLOCK_BYTES, dict(budget.CPU_CHUNK_BYTES)
    if small:
        verify.BLOCK_BYTES = 8 * d * 7  # 7 competitors per verification block: pieces of rows
        budget.CPU_CHUNK_BYTES.update(materialize=4 * p * d * 3, regenerate=4 * d * 16)  # 3 rows; 16 columns
    try:
        kwargs = {} if collective is None else {"collective": collective}
        outcome, w = solve_with_weights(InstanceSpec(problem, d, p, seed), solver, rank, settings, "cpu", **kwargs)
    finally:
        verify.BLOCK_BYTES = saved[0]
        budget.CPU_CHUNK_BYTES.update(saved[1])
    return outcome.as_record(), w.numpy()


# The gang of 3 repeats the cheap cases only (uneven split; chunks and blocks straddling shards; the
# Hebbian rule): the full-length solves on 3 spawned processes cost more than the rest of this file.
GANG_CASES = {2: tuple(range(len(CASES))), 3: (1, 3, 5)}


def gang_work(collective) -> dict:
    """What each rank of a test gang computes: its gang's cases, and the raw collectives on known inputs."""
    rank, size = collective.rank, collective.size
    gen = torch.Generator().manual_seed(rank)
    mine = torch.randn(1000, dtype=torch.float32, generator=gen)
    summed = collective.sum_(mine.clone())
    p = 11
    a, b = shard_rows(p, rank, size)
    rows = collective.gather_rows(torch.arange(a, b, dtype=torch.float64)[:, None] * torch.ones(1, 3), p)
    top = collective.max_(torch.tensor([float(rank), -float(rank)]))
    stopping = stopping_gang_work(collective) if size == 2 else None  # tests/kernels/test_stopping.py
    return {"cases": {i: _solve(CASES[i], collective) for i in GANG_CASES[size]}, "sum": summed, "rows": rows,
            "max": top,
            "stopping": stopping,
            "parts": [torch.randn(1000, dtype=torch.float32, generator=torch.Generator().manual_seed(r))
                      for r in range(size)]}


@pytest.fixture(scope="module")
def gangs() -> dict:
    """Each rank's gang_work for a gang of 2 and one of 3."""
    return {k: run_gang(gang_work, k) for k in (2, 3)}


@pytest.fixture(scope="module")
def unsharded() -> list:
    return [_solve(case) for case in CASES]


# ---- the split -----------------------------------------------------------------------------------
def test_rows_split_into_contiguous_nearly_equal_ranges():
    for p in range(1, 60):
        for k in range(1, min(p, 9) + 1):
            ranges = [shard_rows(p, i, k) for i in range(k)]
            assert ranges[0][0] == 0 and ranges[-1][1] == p
            assert all(ranges[i][1] == ranges[i + 1][0] for i in range(k - 1))
            sizes = [b - a for a, b in ranges]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and max(sizes) == largest_shard(p, k)
            assert [Shard(i, k).rows(p) for i in range(k)] == ranges


@pytest.mark.parametrize("shards,match", [(0, "must be an integer >= 1"), (-2, "must be an integer >= 1"),
                                          (True, "must be an integer"), (9, "more than the p=8 inputs")])
def test_bad_shard_counts_are_refused_in_one_line(shards, match):
    with pytest.raises(InvalidInput, match=match):
        check_shards(shards, 8)
    with pytest.raises(InvalidInput, match=match):
        check_solvable(InstanceSpec("dp", 4, 8, 0), "adam", 4, shards)


def test_lp_refuses_shards():
    with pytest.raises(InvalidInput, match="lp solver runs on one device only"):
        check_solvable(InstanceSpec("op", 4, 8, 0), "lp", 4, 2)


# ---- the shards' sums in one process ---------------------------------------------------------------
@pytest.mark.parametrize("problem,mode", [("op", "materialize"), ("dp", "materialize"), ("dp", "regenerate")])
def test_shard_losses_counts_and_gradients_add_up_to_the_unsharded_ones(problem, mode):
    instance = Instance(InstanceSpec(problem, 7, 23, seed=5))
    w = torch.randn(7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = instance.inputs.double()

    def loss_grad_count(shard: Shard):
        a, b = shard.rows(instance.p)
        z = (x[a:b] @ w.T).requires_grad_()
        loss, count = fused_loss(z, make_source(instance, mode, shard=shard, chunk_rows=4, chunk_cols=6))
        loss.backward()
        return loss.item(), z.grad, int(count)

    full_loss, full_grad, full_count = loss_grad_count(Shard(0, 1))
    parts = [loss_grad_count(Shard(i, 3)) for i in range(3)]
    assert sum(part[0] for part in parts) == pytest.approx(full_loss, rel=1e-13)
    torch.testing.assert_close(torch.cat([part[1] for part in parts]), full_grad, rtol=1e-12, atol=1e-15)
    assert sum(part[2] for part in parts) == full_count


def test_a_materialized_shard_holds_its_rows_only_and_auto_decides_for_the_largest_shard():
    instance = Instance(InstanceSpec("dp", 6, 25, seed=0))
    full = 25 * 25 * 6 * 4
    source = make_source(instance, "materialize", shard=Shard(1, 3))
    assert (source.row0, source.row1) == (8, 16) and source.nbytes == 8 * 6 * 25 * 4
    budget = largest_shard(25, 3) * 25 * 6 * 4  # the largest of 3 shards fits; the whole tensor does not
    assert make_source(instance, "auto", memory_budget_bytes=budget).plan.mode == "regenerate"
    assert budget < full
    for i in range(3):  # every shard resolves the same mode, whatever its own size
        assert make_source(instance, "auto", memory_budget_bytes=budget, shard=Shard(i, 3)).plan.mode == "materialize"
    assert make_source(instance, "auto", memory_budget_bytes=budget - 1, shard=Shard(2, 3)).plan.mode == "regenerate"
    a, b = 8, 16
    tiles = torch.cat([t for _, _, t in source.tiles(a, b)], dim=2)
    torch.testing.assert_close(tiles, instance.competitor_block(a, b), rtol=0, atol=0)
    with pytest.raises(IndexError, match=r"outside this source's rows \[8, 16\)"):
        next(source.tiles(0, 9))


# ---- whole solves on Gloo gangs ----------------------------------------------------------------------
def test_collectives_give_every_rank_the_same_bits(gangs):
    for k, results in gangs.items():
        expected_sum = torch.stack(results[0]["parts"]).sum(dim=0)
        for result in results:
            assert torch.equal(result["sum"], results[0]["sum"])  # bitwise the same on every rank
            torch.testing.assert_close(result["sum"], expected_sum, rtol=1e-6, atol=1e-5)
            assert torch.equal(result["rows"], torch.arange(11, dtype=torch.float64)[:, None] * torch.ones(1, 3))
            assert result["max"].tolist() == [k - 1, 0.0]


def test_a_sharded_gang_stops_alike_every_k(gangs):
    """The stopping rule read every k steps on a gang of 2: the record of the per-step read (test_stopping.py)."""
    check_stopping_gang([result["stopping"] for result in gangs[2]])


def _same(a, b) -> bool:
    """Equal, counting NaN equal to NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("k,index", [(k, i) for k, cases in GANG_CASES.items() for i in cases],
                         ids=[f"{c[0]}-{c[4]}-{c[6]}-p{c[2]}-{k}" for k, cases in GANG_CASES.items()
                              for c in (CASES[i] for i in cases)])
def test_a_sharded_solve_gives_the_unsharded_record(gangs, unsharded, k, index):
    ref_record, ref_w = unsharded[index]
    ranks = [result["cases"][index] for result in gangs[k]]
    for record, w in ranks:  # every rank returns the same record (NaN fields included) and W
        assert record.keys() == ranks[0][0].keys()
        assert all(_same(record[key], ranks[0][0][key]) for key in record if key != "wall_seconds")
        assert np.array_equal(w, ranks[0][1])
    record, w = ranks[0]
    assert record["shards"] == k and ref_record["shards"] == 1
    for key in ("sat", "status", "steps", "n_violations", "accuracy", "mode", "chunk_rows", "chunk_cols",
                "generator", "device"):
        assert record[key] == ref_record[key], key
    assert np.linalg.norm(w - ref_w) <= 1e-5 * np.linalg.norm(ref_w)
    assert math.isnan(record["lp_margin"]) and math.isnan(ref_record["lp_margin"])
    for key in ("min_margin", "final_loss", "target_mean", "target_var", "offtarget_mean", "offtarget_var",
                "input_target_score"):
        assert record[key] == pytest.approx(ref_record[key], rel=1e-4, abs=1e-6), key
    # Weyl: |s_i(W) - s_i(W')| <= |W - W'|_2 <= |W - W'|_F
    np.testing.assert_allclose(record["singular_values"], ref_record["singular_values"], rtol=0,
                               atol=1e-5 * np.linalg.norm(ref_w))
    assert sum(record["offtarget_hist"]) == sum(ref_record["offtarget_hist"]) == CASES[index][2] * (CASES[index][2] - 1)
    assert np.abs(np.subtract(record["target_hist"], ref_record["target_hist"])).sum() <= 2
