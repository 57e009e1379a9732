"""The counter-based Gaussian generator: bit-exact against a pure Python/numpy definition, and Gaussian."""
from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import erfcinv

from lamcap.kernels import gaussian
from lamcap.kernels.gaussian import Stream, mix64_, pairs_to_normal, tables, words_to_normal

M64 = (1 << 64) - 1


def python_mix(x: int) -> int:
    """splitmix64's finaliser (Stafford's mix13) on Python ints: the reference for the int64 tensor path."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def reference_sample(word: int) -> np.float32:
    """One 32-bit word -> N(0, 1) by the module docstring's recipe, in numpy float32 scalar arithmetic."""
    a, b = tables()
    signed = np.int32(word - (1 << 32) if word >= 1 << 31 else word)
    x = np.float32(signed | np.int32(1))  # int32 -> float32, round to nearest even
    bits = int(np.array(x).view(np.int32))
    slot = (bits >> 11) & ((32 << 12) - 1)
    offset = np.float32(bits & 2047)
    value = np.float32(np.float32(b[slot] * offset) + a[slot])
    return np.copysign(value, x)


def reference_pairs(stream: Stream, counters: list[int]) -> list[np.float32]:
    out = []
    for c in counters:
        h = python_mix((stream.key + stream.gamma * c) & M64)
        out += [reference_sample(h & 0xFFFFFFFF), reference_sample(h >> 32)]
    return out


def test_tensor_path_equals_the_python_definition_bit_for_bit():
    stream = Stream.of(12345, 3)
    counters = [0, 1, 2, 3, 7, (1 << 42) + 5, (1 << 63) + 11, M64, 0xDEADBEEFCAFE]
    states = stream.term(torch.tensor([c - (1 << 64) if c >= 1 << 63 else c for c in counters]), with_key=True)
    got = pairs_to_normal(states[None, :], 0, 2 * len(counters))[0]
    want = torch.from_numpy(np.array(reference_pairs(stream, counters), dtype=np.float32))
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))


def test_extreme_words_map_to_the_tails_and_the_centre():
    words = torch.tensor([0, 1, -1, -(2**31), 2**31 - 1, 2**12 + 7, -(2**20) - 3], dtype=torch.int32)
    got = words_to_normal(words.clone())
    want = [reference_sample(int(w) & 0xFFFFFFFF) for w in words]
    assert torch.equal(got, torch.tensor(want, dtype=torch.float32))
    assert got[0] == got[1] == -got[2] and abs(float(got[0]) - 6.2303) < 1e-4  # |x| = 1: the largest value
    assert got[3] == 0 and got[4] == 0  # |x| = 2^31 (rounded): the median


def test_contiguous_and_strided_kernels_agree():
    """The vectorised (contiguous) and scalar (strided) code paths of every operation give the same bits."""
    states = Stream.of(3, 1).axis(0, 4096, 1, torch.device("cpu"), with_key=True)
    words = mix64_(states.clone()).view(torch.int32)
    strided = torch.empty(words.numel() * 3, dtype=torch.int32)[::3]
    strided.copy_(words)
    assert torch.equal(words_to_normal(words.clone()), words_to_normal(strided))


def test_table_knots_are_correctly_rounded_and_slopes_consistent():
    a, b = tables()
    u = gaussian._knot_positions()
    rng = np.random.default_rng(1)
    used = np.flatnonzero(np.isfinite(u))
    sample = np.concatenate([rng.choice(used, 40, replace=False), [used[np.argmin(u[used])], used[np.argmax(u[used])]]])
    with mpmath.workdps(40):
        for slot in sample:
            exact = mpmath.sqrt(2) * mpmath.erfinv(1 - mpmath.mpf(float(u[slot])))
            ulp = float(np.spacing(np.float32(abs(float(exact)))))
            assert abs(float(a[slot]) - exact) <= ulp / 2 * (1 + 1e-9), slot
    assert gaussian.table_digest(a, b) == gaussian.TABLE_SHA256
    unused = ~np.isfinite(u)
    assert (a[unused] == 0).all() and (b[unused] == 0).all()


def test_samples_are_within_one_float32_ulp_of_the_inverse_cdf():
    words = torch.from_numpy(np.random.default_rng(2).integers(-(2**31), 2**31, 200_000).astype(np.int32))
    got = words_to_normal(words.clone()).double().numpy()
    x = (words.numpy() | 1).astype(np.float32).astype(np.float64)
    want = np.sign(x) * np.sqrt(2) * erfcinv(np.abs(x) / 2**31)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert (np.abs(got - want) <= 1.5 * ulp + 5e-9).all()


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    """2^20 consecutive samples of one stream (2^19 counters)."""
    states = Stream.of(0, 9).axis(0, 1 << 19, 1, torch.device("cpu"), with_key=True)
    return pairs_to_normal(states, 0, 1 << 20).double().numpy()


def test_moments_and_tails_are_standard_normal(samples):
    n = samples.size
    assert abs(samples.mean()) < 5 / n**0.5
    assert abs(samples.var() - 1) < 5 * (2 / n) ** 0.5
    assert abs(stats.skew(samples)) < 5 * (6 / n) ** 0.5
    assert abs(stats.kurtosis(samples)) < 5 * (24 / n) ** 0.5
    for t in (2.0, 3.0, 4.0):
        prob = 2 * stats.norm.sf(t)
        assert abs((np.abs(samples) > t).mean() - prob) < 5 * (prob / n) ** 0.5, t


def test_kolmogorov_smirnov_against_the_standard_normal(samples):
    assert stats.kstest(samples, "norm").pvalue > 1e-3
    assert stats.kstest(samples[1::2], "norm").pvalue > 1e-3  # the high words alone


def test_neighbours_and_streams_are_uncorrelated(samples):
    n = samples.size
    bound = 5 / n**0.5
    for lag in (1, 2, 3, 64):  # lag 1 pairs the two words of one hash, then neighbouring hashes
        assert abs(np.corrcoef(samples[:-lag], samples[lag:])[0, 1]) < bound * (n / (n - lag)) ** 0.5
    assert abs(np.corrcoef(samples[0::2], samples[1::2])[0, 1]) < 5 / (n / 2) ** 0.5
    assert abs(np.corrcoef(samples**2, np.roll(samples, 1) ** 2)[0, 1]) < bound  # no dependence in magnitude
    for seed, stream in ((0, 10), (1, 9)):  # another stream of the same seed, the same stream of another seed
        states = Stream.of(seed, stream).axis(0, 1 << 19, 1, torch.device("cpu"), with_key=True)
        other = pairs_to_normal(states, 0, 1 << 20).double().numpy()
        assert abs(np.corrcoef(samples, other)[0, 1]) < bound


def test_streams_have_distinct_odd_gammas_and_keys():
    streams = [Stream.of(seed, s) for seed in range(50) for s in range(1, 5)]
    assert len({st.key for st in streams}) == len(streams) == len({st.gamma for st in streams})
    assert all(st.gamma & 1 and bin(st.gamma ^ (st.gamma >> 1)).count("1") >= 24 for st in streams)
