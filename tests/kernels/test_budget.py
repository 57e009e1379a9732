"""Memory estimates of a probe against what a probe really allocates, and the refusal rules."""
from __future__ import annotations

import math

import pytest

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import check_fits, human, largest_p, probe_memory
from lamcap.kernels.competitors import make_source
from lamcap.kernels.disorder import Instance, InstanceSpec


@pytest.mark.parametrize("p, d", [(300, 16), (1000, 8)])
def test_materialised_competitors_are_counted_exactly(p, d):
    source = make_source(Instance(InstanceSpec("dp", d, p, 0)), "materialize")
    assert probe_memory("dp", d, p, d, "adam", mode="materialize").competitors == source.nbytes


def test_auto_mode_follows_the_materialize_limit_and_op_never_holds_competitors():
    tensor = 200 * 200 * 16 * 4
    assert probe_memory("dp", 16, 200, 16, "adam", memory_budget_bytes=tensor).mode == "materialize"
    assert probe_memory("dp", 16, 200, 16, "adam", memory_budget_bytes=tensor - 1).mode == "regenerate"
    assert probe_memory("dp", 16, 200, 16, "adam", memory_budget_bytes=tensor - 1).competitors == 0
    assert probe_memory("op", 16, 200, 16, "adam", mode="materialize").competitors == 0


def test_the_weights_part_grows_as_d_squared_and_the_inputs_as_p_d():
    a, b = probe_memory("op", 100, 10, 100, "hebbian"), probe_memory("op", 200, 10, 200, "hebbian")
    assert b.weights == 4 * a.weights
    a, b = probe_memory("op", 8, 10_000, 8, "hebbian"), probe_memory("op", 8, 20_000, 8, "hebbian")
    assert b.inputs == 2 * a.inputs


def test_check_fits_names_the_estimate_and_the_limit():
    estimate = probe_memory("dp", 256, 20000, 256, "adam", mode="materialize")
    with pytest.raises(InvalidInput, match=r"needs about 3\d\d\.\d GiB .*competitors 381\.5 GiB.*has 16\.0 GiB.*"
                                           r"regenerate"):
        check_fits(estimate, 16 << 30, "a dp probe", "cpu")
    check_fits(probe_memory("op", 8, 20, 8, "adam"), 16 << 30, "a small probe", "cpu")


def test_largest_p_is_the_last_p_that_fits():
    limit = 2 << 30
    p = largest_p("dp", 64, 64, "adam", limit, mode="materialize")
    assert probe_memory("dp", 64, p, 64, "adam", mode="materialize").total <= limit
    assert probe_memory("dp", 64, p + 1, 64, "adam", mode="materialize").total > limit
    assert largest_p("op", 10**6, 10**6, "hebbian", limit) == 1  # not even p = 2: the weights alone


def test_human_units():
    assert human(512) == "512 B" and human(3 << 30) == "3.0 GiB" and human(math.ldexp(1, 60)) == "1024.0 PiB"


@pytest.mark.parametrize("shards", [2, 3, 7])
def test_a_sharded_estimate_counts_the_largest_shards_competitors_exactly(shards):
    from lamcap.kernels.sharding import Shard

    p, d = 100, 8
    instance = Instance(InstanceSpec("dp", d, p, 0))
    largest = max(make_source(instance, "materialize", shard=Shard(i, shards)).nbytes for i in range(shards))
    estimate = probe_memory("dp", d, p, d, "adam", mode="materialize", shards=shards)
    assert estimate.competitors == largest
    assert estimate.total < probe_memory("dp", d, p, d, "adam", mode="materialize").total


def test_auto_shards_is_the_smallest_count_whose_shard_can_be_materialized():
    from lamcap.kernels.budget import auto_shards

    p, d = 90, 16
    row = p * d * 4
    assert auto_shards("dp", d, p, 8, memory_budget_bytes=p * row) == 1
    assert auto_shards("dp", d, p, 8, memory_budget_bytes=p * row - 1) == 2  # 45 rows per shard fit
    assert auto_shards("dp", d, p, 8, memory_budget_bytes=30 * row) == 3
    assert auto_shards("dp", d, p, 8, memory_budget_bytes=29 * row) == 4  # ceil(90 / 4) = 23 rows
    assert auto_shards("dp", d, p, 4, memory_budget_bytes=row) == 4  # none fits: all the gang, regenerating
    assert auto_shards("dp", d, 3, 8, memory_budget_bytes=1) == 3  # never more shards than rows
    assert auto_shards("dp", d, p, 8, memory_budget_bytes=15 * row, storage_dtype="bfloat16") == 3
    assert auto_shards("op", d, p, 8, memory_budget_bytes=1) == 1  # OP's outputs are shared, never split
    for budget in (30 * row, 45 * row, 12 * row):  # the estimate agrees: auto's count is the first that materializes
        chosen = auto_shards("dp", d, p, 8, memory_budget_bytes=budget)
        assert probe_memory("dp", d, p, d, "adam", memory_budget_bytes=budget, shards=chosen).mode == "materialize"
        assert probe_memory("dp", d, p, d, "adam", memory_budget_bytes=budget, shards=chosen - 1).mode == "regenerate"


def test_a_cuda_estimate_counts_the_verification_blocks_of_its_gpu():
    from lamcap.kernels import verify
    from lamcap.kernels.budget import VERIFY_BLOCK_COPIES

    total = 32 << 30
    estimate = probe_memory("dp", 64, 1000, 64, "hebbian", device_type="cuda", total_memory=total)
    block_bytes = (total // (verify.CUDA_CHUNK_DIVISOR * verify.FLOAT64_BYTES)) * verify.FLOAT64_BYTES
    assert estimate.verification >= VERIFY_BLOCK_COPIES * block_bytes
