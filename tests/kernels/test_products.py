"""The fused loss's products at each precision, and bfloat16 storage read directly, against float64 references.

A GPU's bf16 x bf16 -> fp32 product is emulated on the CPU exactly where it matters: the products of two
bfloat16s are exact in float64 (8 + 8 significant bits), summed there and rounded once to float32, a
tighter sum than the tensor cores' float32 accumulation. The three-way split must then reproduce the float32
product of the bfloat16-rounded competitors; the two-way split (bf16x3) the float32 product to ~2^-16.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lamcap.kernels.budget import competitor_mode, competitor_plan
from lamcap.kernels.competitors import make_source, plan_source
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.products import HIGHEST, Products, _tf32, products_for, split_bf16
from lamcap.kernels.reference import naive_loss
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.solvers import solve
from lamcap.kernels.vocabulary import STORAGE_BYTES


def emulated(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """bf16 x bf16 -> fp32 on the CPU: exact products and sums in float64, one rounding to float32."""
    assert a.dtype == b.dtype == torch.bfloat16
    return (a.double() @ b.double()).float()


def random_fp32(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))
    return torch.from_numpy(x.astype(np.float32))


def test_the_three_way_split_is_exact_and_the_two_way_keeps_16_bits():
    x = torch.cat([random_fp32(100_000), torch.tensor([1.0, -1.0, 3.0, 1 + 2**-23, -(2 - 2**-23), 0.0, 1e-30])])
    parts = split_bf16(x, 3)
    assert all(p.dtype == torch.bfloat16 for p in parts)
    total = parts[0].double() + parts[1].double() + parts[2].double()
    assert torch.equal(total, x.double())  # exact
    hi, lo = split_bf16(x, 2)
    err = (hi.double() + lo.double() - x.double()).abs()
    assert (err <= x.double().abs() * 2.0**-16).all()


@pytest.mark.parametrize("rows,d,cols", [(3, 8, 37), (1, 96, 1200), (5, 33, 2)])
def test_direct_bfloat16_products_are_the_float32_products_of_the_rounded_tile(rows, d, cols):
    gen = torch.Generator().manual_seed(rows)
    tile = torch.randn(rows, d, cols, generator=gen).to(torch.bfloat16)
    z, probs = torch.randn(rows, d, generator=gen), torch.rand(rows, cols, generator=gen)
    direct = Products("highest", emulated)
    exact_s = torch.einsum("rd,rdc->rc", z.double(), tile.double())
    exact_w = torch.einsum("rc,rdc->rd", probs.double(), tile.double())
    for got, exact, upcast in ((direct.scores(z, tile), exact_s, HIGHEST.scores(z, tile.float())),
                               (direct.weighted_sum(probs, tile), exact_w, HIGHEST.weighted_sum(probs, tile.float()))):
        assert got.dtype == torch.float32
        scale = exact.abs().max()
        # three exact parts, each rounded once to float32, then two float32 additions: within a few ulps
        assert (got.double() - exact).abs().max() <= 4 * 2.0**-24 * scale
        assert (upcast.double() - exact).abs().max() <= d * 2.0**-23 * scale  # the CPU's float32 path agrees


@pytest.mark.parametrize("problem", ["op", "dp"])
def test_bf16x3_products_are_float32_products_to_16_bits(problem):
    gen = torch.Generator().manual_seed(1)
    z, probs = torch.randn(4, 16, generator=gen), torch.rand(4, 50, generator=gen)
    tile = torch.randn(50, 16, generator=gen) if problem == "op" else torch.randn(4, 16, 50, generator=gen)
    x3 = Products("bf16x3", emulated)
    for got, want in ((x3.scores(z, tile), HIGHEST.scores(z.double(), tile.double())),
                      (x3.weighted_sum(probs, tile), HIGHEST.weighted_sum(probs.double(), tile.double()))):
        assert got.dtype == torch.float32 and got.shape == want.shape
        bound = 3 * 2.0**-16 * (z.abs().max() if got.shape == (4, 50) else probs.abs().max()) * tile.abs().max() * 50
        assert (got.double() - want).abs().max() <= bound


def test_the_fused_loss_reads_bfloat16_storage_directly_like_the_rounded_instance():
    """A bfloat16 source whose products read the tensor itself (emulated): the loss, gradient and count of
    the bfloat16-rounded instance (naive reference in float64), to float32 accuracy."""
    instance = Instance(InstanceSpec("dp", 8, 60, seed=6))
    source = make_source(instance, "materialize", storage_dtype="bfloat16", chunk_rows=7, chunk_cols=25)
    source.products = Products("highest", emulated)
    tiles = [t for _, _, t in source.tiles(0, 7)]
    assert all(t.dtype == torch.bfloat16 for t in tiles)  # no upcast copies
    w = torch.randn(8, 8, generator=torch.Generator().manual_seed(0)) / 8**0.5
    z = (instance.inputs @ w.T).requires_grad_()
    loss, count = fused_loss(z, source)
    loss.backward()
    zr = z.detach().double().requires_grad_()
    want, want_count = naive_loss(zr, instance.materialize().to(torch.bfloat16).double(), "dp")
    want.backward()
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    torch.testing.assert_close(z.grad.double(), zr.grad, rtol=1e-4, atol=1e-7)
    assert abs(int(count) - int(want_count)) <= 1


def test_tf32_is_switched_on_for_the_products_only():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision if hasattr(matmul, "fp32_precision") else matmul.allow_tf32
    with _tf32():
        inside = matmul.fp32_precision if hasattr(matmul, "fp32_precision") else matmul.allow_tf32
    after = matmul.fp32_precision if hasattr(matmul, "fp32_precision") else matmul.allow_tf32
    assert inside in ("tf32", True) and after == before


def test_a_cpu_multiplies_in_float32_whatever_is_asked_and_records_it():
    instance = Instance(InstanceSpec("op", 6, 20, seed=0))
    for precision in ("highest", "tf32", "bf16x3"):
        assert products_for(instance.device, precision) is HIGHEST
        assert plan_source(instance, precision=precision).precision == "highest"
    spec = InstanceSpec("dp", 6, 20, seed=2)
    adam = solve(spec, "adam", 6, SolverSettings(max_steps=3, matmul_precision="tf32", storage_dtype="bfloat16",
                                                  mode="materialize"))
    assert (adam.storage_dtype, adam.matmul_precision) == ("bfloat16", "highest")
    regen = solve(spec, "adam", 6, SolverSettings(max_steps=3, mode="regenerate", storage_dtype="bfloat16"))
    assert (regen.storage_dtype, regen.matmul_precision) == ("float32", "highest")  # regenerated: float32
    hebbian = solve(spec, "hebbian", 6)
    assert (hebbian.storage_dtype, hebbian.matmul_precision) == ("none", "none")


def test_the_store_declares_the_new_fields():
    from lamcap.kernels.outcome import PLAN_PRECISIONS, PLAN_STORAGES
    from lamcap.store.schema import PROBES

    assert PROBES["storage_dtype"].categories == PLAN_STORAGES
    assert PROBES["matmul_precision"].categories == PLAN_PRECISIONS
    assert PROBES["storage_dtype"].absent == "none" and PROBES["matmul_precision"].absent == "none"


# ---- auto storage: the one rule -------------------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 3])
def test_auto_storage_holds_float32_where_it_fits_else_bfloat16_else_regenerates(shards):
    d, p = 16, 90
    rows = -(-p // shards)
    full = rows * p * d * 4
    assert competitor_plan("dp", d, p, "auto", "auto", full, shards) == ("materialize", "float32")
    assert competitor_plan("dp", d, p, "auto", "auto", full - 1, shards) == ("materialize", "bfloat16")
    assert competitor_plan("dp", d, p, "auto", "auto", full // 2, shards) == ("materialize", "bfloat16")
    assert competitor_plan("dp", d, p, "auto", "auto", full // 2 - 1, shards) == ("regenerate", "float32")
    assert competitor_plan("dp", d, p, "materialize", "auto", 1, shards) == ("materialize", "bfloat16")
    assert competitor_plan("dp", d, p, "regenerate", "auto", full, shards) == ("regenerate", "float32")
    assert competitor_plan("op", d, p, "auto", "auto", 0, shards) == ("materialize", "float32")
    for budget in (full, full - 1, full // 2, full // 2 - 1):  # the planner's bytes for 'auto' give the same mode
        assert competitor_mode("dp", d, p, "auto", STORAGE_BYTES["auto"], budget, shards) == \
            competitor_plan("dp", d, p, "auto", "auto", budget, shards)[0]


def test_an_auto_probe_materializes_bfloat16_where_only_that_fits_and_records_it():
    from lamcap.kernels.budget import probe_memory

    d, p = 6, 40
    budget = p * p * d * 2  # bfloat16 fits, float32 does not
    settings = SolverSettings(max_steps=4, storage_dtype="auto", memory_budget_bytes=budget)
    outcome = solve(InstanceSpec("dp", d, p, 1), "adam", d, settings)
    assert (outcome.mode, outcome.storage_dtype) == ("materialize", "bfloat16")
    estimate = probe_memory("dp", d, p, d, "adam", storage_dtype="auto", memory_budget_bytes=budget)
    assert estimate.mode == "materialize" and estimate.competitors == budget
    roomy = solve(InstanceSpec("dp", d, p, 1), "adam", d, SolverSettings(max_steps=4, storage_dtype="auto"))
    assert (roomy.mode, roomy.storage_dtype) == ("materialize", "float32")


# ---- on a GPU ------------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_gpu_products_agree_with_the_emulation_and_float32():
    device = torch.device("cuda")
    assert products_for(device, "bf16x3").low is not None, "this torch lacks bf16 x bf16 -> fp32 products"
    gen = torch.Generator().manual_seed(3)
    tile = torch.randn(6, 64, 500, generator=gen).to(torch.bfloat16)
    z, probs = torch.randn(6, 64, generator=gen), torch.rand(6, 500, generator=gen)
    direct = products_for(device, "highest")
    for name in ("scores", "weighted_sum"):
        left = z if name == "scores" else probs
        got = getattr(direct, name)(left.to(device), tile.to(device)).cpu()
        want = getattr(Products("highest", emulated), name)(left, tile)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    op_tile = torch.randn(500, 64, generator=gen)
    for precision, tol in (("tf32", 3e-3), ("bf16x3", 1e-4)):
        how = products_for(device, precision)
        got = how.scores(z.to(device), op_tile.to(device)).cpu()
        torch.testing.assert_close(got, HIGHEST.scores(z, op_tile), rtol=tol, atol=tol * 10)


@pytest.mark.cuda
@cuda
def test_gpu_probes_record_their_storage_and_precision_and_keep_easy_verdicts():
    spec = InstanceSpec("dp", 16, 40, seed=1)
    # DP's float32 products stay highest under bf16x3
    for storage, precision in (("bfloat16", "highest"), ("float32", "tf32"), ("float32", "bf16x3")):
        outcome = solve(spec, "adam", 16, SolverSettings(max_steps=300, storage_dtype=storage, mode="materialize",
                                                         matmul_precision=precision), device="cuda")
        assert outcome.sat and outcome.storage_dtype == storage
        assert outcome.matmul_precision == ("tf32" if precision == "tf32" and storage == "float32" else "highest")
