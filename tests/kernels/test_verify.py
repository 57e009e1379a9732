"""lamcap.kernels.verify against a brute-force numpy evaluation of the materialised score matrix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lamcap.kernels import verify as verify_mod
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.verify import HIST_EDGES, count_stored, verify


def brute_force(instance: Instance, w: np.ndarray) -> dict:
    """Every field of verify() from the full p x p score matrix, in numpy float64."""
    x = instance.inputs.double().numpy()
    y = instance.materialize().double().numpy()
    z = x @ w.T
    s = z @ y.T if instance.problem == "op" else np.einsum("mnd,md->mn", y, z)
    p = instance.p
    diag = np.eye(p, dtype=bool)
    target, off = np.diag(s), s[~diag]
    max_off = np.where(diag, -np.inf, s).max(axis=1)
    mean_off, sigma_off = off.mean(), off.std()
    t, u = (target - mean_off) / sigma_off, (off - mean_off) / sigma_off
    row_max = s.max(axis=1, keepdims=True)
    lse = row_max[:, 0] + np.log(np.exp(s - row_max).sum(axis=1))
    def hist(v):
        return np.histogram(np.clip(v, HIST_EDGES[0], HIST_EDGES[-1]), HIST_EDGES)[0]

    stored = target > max_off
    return dict(
        sat=bool(stored.all()), n_violations=int((~stored).sum()), accuracy=stored.mean(),
        min_margin=((target - max_off) / sigma_off).min(), loss=(lse - target).mean(),
        target_mean=t.mean(), target_var=t.var(), offtarget_mean=u.mean(), offtarget_var=u.var(),
        target_hist=hist(t), offtarget_hist=hist(u),
        singular_values=np.linalg.svd(w, compute_uv=False), mean_off=mean_off, sigma_off=sigma_off,
    )


def assert_matches(got, ref: dict) -> None:
    for name, want in ref.items():
        value = getattr(got, name)
        if name.endswith("hist"):
            assert value.sum() == want.sum(), name
            # the two sides normalise with differently rounded moments: allow a bin flip or two
            assert np.abs(value - want).sum() <= 2, (name, value, want)
        elif isinstance(want, (bool, int)):
            assert value == want, (name, value, want)
        else:
            np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("problem,d,p", [("op", 5, 37), ("dp", 4, 41), ("dp", 3, 300), ("op", 7, 2)])
@pytest.mark.parametrize("which", ["random", "hebbian"])
def test_verify_equals_brute_force(problem, d, p, which):
    instance = Instance(InstanceSpec(problem, d, p, seed=3))
    rng = np.random.default_rng(p)
    w = rng.normal(size=(d, d)) if which == "random" else (
        instance.targets.double().T @ instance.inputs.double()).numpy()
    got = verify(instance, torch.from_numpy(w))
    assert_matches(got, brute_force(instance, w))
    assert count_stored(instance, torch.from_numpy(w)) == p - got.n_violations


@pytest.mark.parametrize("p,block_elements", [(300, 8 * 3 * 300 - 1), (45, 3 * 13)])
def test_small_blocks_give_the_same_answer(monkeypatch, p, block_elements):
    """Force many row blocks (7 rows of p = 300), or single-row blocks of 13 columns (not dividing p = 45)."""
    instance = Instance(InstanceSpec("dp", 3, p, seed=5))
    w = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 3)))
    whole = verify(instance, w)
    monkeypatch.setattr(verify_mod, "BLOCK_BYTES", 8 * block_elements)
    chunked = verify(instance, w)
    op = Instance(InstanceSpec("op", 3, p, seed=5))
    assert_matches(verify(op, w), brute_force(op, w.numpy()))
    assert_matches(chunked, brute_force(instance, w.numpy()))
    for name in ("sat", "n_violations", "min_margin", "loss", "target_var"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-12)
    np.testing.assert_array_equal(chunked.target_hist, whole.target_hist)


def test_hebbian_stores_all_at_tiny_load_and_counts_ties_as_violations():
    instance = Instance(InstanceSpec("op", 16, 3, seed=1))
    w_h = instance.targets.double().T @ instance.inputs.double()
    assert verify(instance, w_h).sat
    zero = verify(instance, torch.zeros(16, 16, dtype=torch.float64))
    assert not zero.sat and zero.n_violations == 3  # all scores tie at 0: strictness matters


def test_non_finite_w_is_unsat_without_crash():
    instance = Instance(InstanceSpec("dp", 4, 10, seed=0))
    w = torch.full((4, 4), float("nan"))
    got = verify(instance, w)
    assert not got.sat and got.n_violations == 10 and np.isnan(got.min_margin)
    assert count_stored(instance, w) == 0


HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy")


def count_host_reads(monkeypatch, fn) -> int:
    """Calls of the Tensor methods that make a GPU wait (device-to-host reads) while fn runs."""
    calls = []
    with monkeypatch.context() as patch:
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)

            def spy(self, *args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, spy)
        fn()
    return len(calls)


@pytest.mark.parametrize("problem", ["dp", "op"])
def test_host_reads_do_not_grow_with_the_number_of_blocks(monkeypatch, problem):
    instance = Instance(InstanceSpec(problem, 3, 120, seed=1))
    w = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 3)))
    one_block = count_host_reads(monkeypatch, lambda: verify(instance, w))
    count_one = count_host_reads(monkeypatch, lambda: count_stored(instance, w))
    monkeypatch.setattr(verify_mod, "BLOCK_BYTES", 8 * 3 * 120 * 2)  # 2 rows per block: 60 blocks
    many_blocks = count_host_reads(monkeypatch, lambda: verify(instance, w))
    many_count = count_host_reads(monkeypatch, lambda: count_stored(instance, w))
    assert many_blocks == one_block <= 12, (one_block, many_blocks)
    assert many_count == count_one <= 2, (count_one, many_count)


# ---- the exact passes read the competitors once -------------------------------------------------------------
def _same_verification(a, b) -> bool:
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
            return False
    return True


class Generated:
    """Counts the competitors an instance generates (Instance.competitor_block)."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        original = Instance.competitor_block

        def counted(instance, *args, **kwargs):
            block = original(instance, *args, **kwargs)
            self.n += block.numel()
            return block

        monkeypatch.setattr(Instance, "competitor_block", counted)


@pytest.mark.parametrize("problem,d,p,block", [("dp", 5, 37, None), ("dp", 4, 41, 8 * 4 * 7), ("op", 6, 33, 8 * 6 * 5)])
def test_held_streamed_and_materialised_scores_give_the_same_bits(monkeypatch, problem, d, p, block):
    from lamcap.kernels import budget
    from lamcap.kernels.competitors import make_source

    if block:
        monkeypatch.setattr(verify_mod, "BLOCK_BYTES", block)  # pieces of rows
    instance = Instance(InstanceSpec(problem, d, p, seed=2))
    w = torch.from_numpy(np.random.default_rng(1).normal(size=(d, d)))
    generated = Generated(monkeypatch)
    held = verify(instance, w)
    assert generated.n == (p * p * d if problem == "dp" else 0)  # once, for both passes
    source = make_source(instance, "materialize")
    generated.n = 0
    from_source = verify(instance, w, source=source)
    assert generated.n == 0 and _same_verification(held, from_source)
    monkeypatch.setattr(budget, "CPU_HELD_SCORE_BYTES", 0)  # too large to hold: each pass recomputes
    streamed = verify(instance, w)
    assert generated.n == (2 * p * p * d if problem == "dp" else 0)
    assert _same_verification(held, streamed)
    bf16 = make_source(instance, "materialize", storage_dtype=torch.bfloat16)  # rounded: never read
    assert _same_verification(held, verify(instance, w, source=bf16))


def test_the_count_hands_its_scores_to_verification(monkeypatch):
    from lamcap.kernels.verify import exact_count

    instance = Instance(InstanceSpec("dp", 6, 30, seed=4))
    w = instance.targets.double().T @ instance.inputs.double()
    generated = Generated(monkeypatch)
    count, scores = exact_count(instance, w)
    check = verify(instance, w, scores=scores)
    assert generated.n == 30 * 30 * 6 and count == 30 - check.n_violations
    assert _same_verification(check, verify(instance, w))
    other = verify(instance, 2 * w, scores=scores)  # scores of another W are not used
    assert _same_verification(other, verify(instance, 2 * w))


def test_a_converged_regenerating_probe_generates_its_instance_once_outside_training(monkeypatch):
    from lamcap.kernels.settings import SolverSettings
    from lamcap.kernels.solvers import solve

    generated = Generated(monkeypatch)
    outcome = solve(InstanceSpec("dp", 8, 16, 1), "adam", 8, SolverSettings(mode="regenerate"))
    assert outcome.status == "converged"
    per_walk = 16 * 16 * 8
    # every step's gradient, one exact walk (the count and both passes), input 0's competitors (input_scores)
    assert generated.n == (outcome.steps + 1) * per_walk + per_walk + 16 * 8
