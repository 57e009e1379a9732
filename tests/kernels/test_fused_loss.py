"""The fused loss against the naive materialised reference (einsum + F.cross_entropy + autograd)."""
from __future__ import annotations

import pytest
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.competitors import make_source, resolve_mode
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.reference import naive_loss

P = 53  # prime: no chunk size divides it


def reference(instance: Instance, z: torch.Tensor) -> tuple[float, torch.Tensor, int]:
    z = z.detach().clone().requires_grad_()
    loss, n_stored = naive_loss(z, instance.materialize().double(), instance.problem)
    (grad,) = torch.autograd.grad(loss, z)
    return float(loss.detach()), grad, int(n_stored)


def fused(source, z: torch.Tensor) -> tuple[float, torch.Tensor, int]:
    z = z.detach().clone().requires_grad_()
    loss, n_stored = fused_loss(z, source)
    (grad,) = torch.autograd.grad(loss, z)
    return float(loss.detach()), grad, int(n_stored)


def random_z(instance: Instance, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(instance.d, instance.d, generator=gen, dtype=torch.float64) * scale / instance.d**0.5
    return instance.inputs.double() @ w.T


@pytest.mark.parametrize("problem", ["op", "dp"])
@pytest.mark.parametrize("mode", ["materialize", "regenerate"])
@pytest.mark.parametrize("rows,cols", [(None, None), (1, 1), (3, 7), (8, 53), (53, 5), (64, 100)])
def test_loss_gradient_and_count_equal_the_naive_reference(problem, mode, rows, cols):
    instance = Instance(InstanceSpec(problem, 6, P, seed=4))
    source = make_source(instance, mode, chunk_rows=rows, chunk_cols=cols)
    for scale in (1.0, 5.0):
        z = random_z(instance, scale)
        loss, grad, count = fused(source, z)
        want_loss, want_grad, want_count = reference(instance, z)
        assert loss == pytest.approx(want_loss, rel=1e-10)
        torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)
        assert count == want_count


def test_gradient_flows_to_two_layer_factors_as_autograd_says():
    instance = Instance(InstanceSpec("dp", 5, 30, seed=1))
    gen = torch.Generator().manual_seed(3)
    a0 = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    b0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    x, y = instance.inputs.double(), instance.materialize().double()
    grads = []
    for loss_fn in (lambda z: fused_loss(z, make_source(instance, "regenerate", chunk_rows=4, chunk_cols=9)),
                    lambda z: naive_loss(z, y, "dp")):
        a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
        loss, _ = loss_fn(x @ (a @ b).T)
        loss.backward()
        grads.append((a.grad, b.grad))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_huge_margins_stay_finite_and_exact():
    """Scores of hundreds of nats: the online softmax must not overflow where the reference does not."""
    instance = Instance(InstanceSpec("dp", 8, 40, seed=2))
    w = instance.targets.double().T @ instance.inputs.double()  # Hebbian: large target scores
    z = instance.inputs.double() @ (50 * w).T
    loss, grad, count = fused(make_source(instance, "materialize", chunk_rows=7, chunk_cols=6), z)
    want_loss, want_grad, want_count = reference(instance, z)
    assert torch.isfinite(grad).all() and loss == pytest.approx(want_loss, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-12)
    assert count == want_count


def test_ties_are_not_stored():
    instance = Instance(InstanceSpec("op", 4, 9, seed=0))
    z = torch.zeros(9, 4, dtype=torch.float64)  # every score ties at 0
    loss, _, count = fused(make_source(instance), z)
    assert count == 0 and loss == pytest.approx(torch.log(torch.tensor(9.0)).item())


def test_float32_matches_float64_closely():
    instance = Instance(InstanceSpec("dp", 12, 100, seed=5))
    z = random_z(instance, 2.0)
    source = make_source(instance, "materialize")
    loss32, grad32, _ = fused(source, z.float())
    loss64, grad64, _ = fused(source, z)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-4, atol=1e-7)


def test_bfloat16_storage_is_the_rounded_instance():
    """bf16 shards hold the bf16-rounded competitors; accumulation stays float32."""
    instance = Instance(InstanceSpec("dp", 8, 60, seed=6))
    z = random_z(instance)
    loss, grad, _ = fused(make_source(instance, "materialize", storage_dtype=torch.bfloat16), z)
    rounded = instance.materialize().to(torch.bfloat16).double()
    zr = z.detach().clone().requires_grad_()
    want, _ = naive_loss(zr, rounded, "dp")
    (want_grad,) = torch.autograd.grad(want, zr)
    assert loss == pytest.approx(float(want.detach()), rel=1e-10)
    torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)


def test_auto_mode_follows_the_memory_budget():
    instance = Instance(InstanceSpec("dp", 8, 50, seed=0))
    needed = 50 * 50 * 8 * 4
    assert resolve_mode(instance, "auto", needed) == "materialize"
    assert resolve_mode(instance, "auto", needed - 1) == "regenerate"
    assert resolve_mode(instance, "auto", needed // 2, torch.bfloat16) == "materialize"
    assert resolve_mode(Instance(InstanceSpec("op", 8, 50, seed=0)), "regenerate", 0) == "materialize"
    assert make_source(instance, "auto", memory_budget_bytes=0).nbytes == 0  # regenerate holds nothing


@pytest.mark.parametrize("kwargs,name", [
    (dict(mode="stream"), "stream"), (dict(chunk_rows=0), "chunk_rows=0"), (dict(chunk_cols=-2), "chunk_cols=-2"),
    (dict(memory_budget_bytes=-1), "memory_budget_bytes=-1"), (dict(storage_dtype=torch.float16), "float16"),
])
def test_bad_source_settings_name_the_value(kwargs, name):
    with pytest.raises(InvalidInput, match=name):
        make_source(Instance(InstanceSpec("dp", 3, 5, seed=0)), **kwargs)


def test_bad_z_is_refused():
    source = make_source(Instance(InstanceSpec("dp", 3, 5, seed=0)))
    with pytest.raises(InvalidInput, match="shape"):
        fused_loss(torch.zeros(4, 3), source)
    with pytest.raises(InvalidInput, match="dtype"):
        fused_loss(torch.zeros(5, 3, dtype=torch.float16), source)
