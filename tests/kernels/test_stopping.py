"""The stopping rule read every k steps gives the record of the per-step rule: verdict, steps and W bit for bit.

The reference is the per-step loop written out here from the public pieces (the source, the fused loss, the
float64 count, the schedule): read the loss and the float32 count after every step's gradient, stop on a
non-finite loss or when the float64 count agrees that all are stored. Training with check_every = k must
stop at the same step with the same bits, whatever k, also when the float64 count refuses float32
candidates (bfloat16 storage near threshold at a small learning rate does it; a refusing count does it on
demand, two candidates in one window included), for ranks below d, and on a Gloo gang
(tests/kernels/test_sharding.py runs it).
"""
from __future__ import annotations

import math

import pytest
import torch

from lamcap.kernels.competitors import make_source
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.solvers import adam, solve_with_weights
from lamcap.kernels.solvers.adam import learning_rate, train_adam
from lamcap.kernels.solvers.stopping import check_interval
from lamcap.kernels.verify import count_stored, exact_count
from lamcap.kernels.weights import init_full, init_two_layer, weight_generator


def per_step(instance: Instance, rank: int, settings: SolverSettings,
             count=count_stored) -> tuple[torch.Tensor, int, str]:
    """The per-step rule (unsharded): (W, steps, status)."""
    d, p = instance.d, instance.p
    gen = weight_generator(instance.spec.seed, rank, d)
    params = [init_full(d, gen)] if rank == d else list(init_two_layer(d, rank, gen))
    params = [t.requires_grad_() for t in params]
    weight = (lambda: params[0]) if rank == d else (lambda: params[0] @ params[1])
    source = make_source(instance, settings.mode, storage_dtype=getattr(torch, settings.storage_dtype))
    x = instance.inputs
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    for step in range(settings.max_steps):
        w = weight()
        z = (x @ w.detach().T).requires_grad_()
        loss, stored = fused_loss(z, source)
        loss.backward()
        grad = (z.grad.double().T @ x.double()).float()
        if not math.isfinite(float(loss.detach())):
            return torch.full_like(w.detach(), float("nan")), step, "diverged"
        if int(stored) == p and count(instance, w) == p:
            return w.detach(), step, "converged"
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        optimizer.zero_grad(set_to_none=True)
        w.backward(grad)
        optimizer.step()
    w = weight().detach()
    return (w if torch.isfinite(w).all() else torch.full_like(w, float("nan"))), settings.max_steps, \
        ("max_steps" if torch.isfinite(w).all() else "diverged")


# (problem, d, p, seed, rank, mode, storage, lr, max_steps): SAT, UNSAT, two-layer, both modes, bf16 near
# threshold at lr 0.03 (the last two refuse float32 candidates: 1 and 2 of them), a divergence.
CASES = [
    ("op", 8, 20, 0, 8, "materialize", "float32", 1.0, 200),
    ("op", 8, 31, 3, 8, "materialize", "float32", 1.0, 90),
    ("op", 10, 14, 1, 3, "materialize", "float32", 1.0, 200),
    ("dp", 8, 18, 1, 8, "materialize", "float32", 1.0, 200),
    ("dp", 8, 20, 4, 8, "regenerate", "float32", 1.0, 200),
    ("dp", 8, 22, 2, 8, "regenerate", "float32", 1.0, 70),
    ("dp", 6, 12, 5, 3, "regenerate", "float32", 1.0, 200),
    ("dp", 8, 20, 0, 5, "materialize", "bfloat16", 1.0, 200),
    ("op", 6, 60, 0, 6, "materialize", "float32", 1e37, 60),
    ("dp", 8, 17, 3, 8, "materialize", "bfloat16", 0.03, 300),
    ("dp", 8, 18, 3, 8, "materialize", "bfloat16", 0.03, 400),
]
SEEDS = range(6)  # test_many_seeds_give_the_same_records_every_k
ID = [f"{c[0]}-d{c[1]}-p{c[2]}-s{c[3]}-r{c[4]}-{c[5]}-{c[6]}-lr{c[7]:g}" for c in CASES]


def settings_of(case: tuple, every: int | None = None) -> SolverSettings:
    *_, mode, storage, lr, steps = case
    return SolverSettings(lr=lr, max_steps=steps, mode=mode, storage_dtype=storage, check_every=every)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


@pytest.fixture(scope="module")
def references() -> list:
    return [per_step(Instance(InstanceSpec(*c[:4])), c[4], settings_of(c)) for c in CASES]


@pytest.mark.parametrize("index", range(len(CASES)), ids=ID)
def test_every_k_stops_where_the_per_step_rule_does(references, index):
    case = CASES[index]
    w, steps, status = references[index]
    for every in (1, 5, 32):
        trained = train_adam(Instance(InstanceSpec(*case[:4])), case[4], settings_of(case, every))
        assert (trained.steps, trained.status) == (steps, status), every
        assert same_bits(trained.w, w), every


def test_the_cases_include_float32_candidates_the_float64_count_refuses():
    refused = [train_adam(Instance(InstanceSpec(*c[:4])), c[4], settings_of(c, 32)).refused for c in CASES[-2:]]
    assert refused == [1, 2]


@pytest.mark.parametrize("problem,d,p", [("op", 6, 14), ("dp", 6, 12), ("dp", 7, 16)])
def test_many_seeds_give_the_same_records_every_k(problem, d, p):
    for seed in SEEDS:
        spec = InstanceSpec(problem, d, p, seed)
        records = []
        for every in (1, 16):
            outcome, w = solve_with_weights(spec, "adam", d, SolverSettings(max_steps=120, check_every=every))
            record = outcome.as_record()
            for timing in ("wall_seconds", "cpu_seconds", "peak_bytes"):
                record.pop(timing)
            records.append((record, w))
        assert records[0][0] == records[1][0] and torch.equal(records[0][1], records[1][1]), seed


class Refusing:
    """The float64 count, refusing its first `n` calls (as if those W stored one association fewer): as
    count_stored (the reference's) and as exact_count (training's)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self, instance, w, *args):
        real, scores = exact_count(instance, w, *args)
        if self.left > 0:
            self.left -= 1
            real -= 1
        return real if not args else (real, scores)


@pytest.mark.parametrize("index", [0, 3, 4, 6], ids=[ID[i] for i in (0, 3, 4, 6)])
def test_refused_candidates_are_replayed_to_the_next_one(monkeypatch, index):
    case = CASES[index]
    w, steps, status = per_step(Instance(InstanceSpec(*case[:4])), case[4], settings_of(case), Refusing(3))
    replays = []
    original = adam._Run.replay
    monkeypatch.setattr(adam._Run, "replay", lambda self, a, b: replays.append((a, b)) or original(self, a, b))
    for every in (1, 4, 32):
        monkeypatch.setattr(adam, "exact_count", Refusing(3))
        trained = train_adam(Instance(InstanceSpec(*case[:4])), case[4], settings_of(case, every))
        assert (trained.steps, trained.status, trained.refused) == (steps, status, 3), every
        assert same_bits(trained.w, w), every
    assert replays  # a window held a second candidate


def test_fused_adam_stops_alike_every_k(monkeypatch):
    """Adam with its step counter on the device (what a GPU runs): the same record every k."""
    monkeypatch.setattr(adam, "FUSED_DEVICES", ("cpu", "cuda"))
    for case in (CASES[0], CASES[2], CASES[4], CASES[-1]):
        runs = [train_adam(Instance(InstanceSpec(*case[:4])), case[4], settings_of(case, every)) for every in (1, 32)]
        assert (runs[0].steps, runs[0].status) == (runs[1].steps, runs[1].status) and same_bits(runs[0].w, runs[1].w)
        assert runs[0].status == "converged"


def test_the_interval_defaults_to_every_step_on_a_cpu_only():
    assert check_interval(SolverSettings(), "cpu") == 1 and check_interval(SolverSettings(), "cuda") == 32
    assert check_interval(SolverSettings(check_every=7), "cpu") == 7
    for bad in (0, -1, True, 2.5):
        with pytest.raises(Exception, match="check_every"):
            SolverSettings(check_every=bad)


# ---- a Gloo gang (run by tests/kernels/test_sharding.py's gang of 2, which spawns once for both modules) -----
GANG_CASES = [CASES[1], CASES[4], CASES[6], CASES[-2]]


def stopping_gang_work(collective) -> list:
    """Each gang case every k, with the float64 count refusing once: (steps, status, refused, W) per k."""
    out = []
    for case in GANG_CASES:
        per_k = []
        for every in (1, 6):
            adam.exact_count = Refusing(1)
            trained = train_adam(Instance(InstanceSpec(*case[:4])), case[4], settings_of(case, every), collective)
            per_k.append((trained.steps, trained.status, trained.refused, trained.w))
        out.append(per_k)
    adam.exact_count = exact_count
    return out


def check_stopping_gang(ranks: list) -> None:
    """Every k on every rank: the same stop, the same refusals and the same bits."""
    assert sum(rank[i][0][1] == "converged" for rank in ranks[:1] for i in range(len(GANG_CASES))) >= 2
    for i, case in enumerate(GANG_CASES):
        (steps, status, refused, w), *others = [run for rank in ranks for run in rank[i]]
        assert refused == 1 or status != "converged", case
        for other in others:
            assert other[:3] == (steps, status, refused) and same_bits(other[3], w), case


# ---- on a GPU ------------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_gpu_training_reads_the_device_once_per_window():
    """Fused Adam, the loss and the count stay on the device: a run of 96 steps reads it at its three window
    ends and once at the end (torch's sync debug mode warns on every synchronising call)."""
    import warnings

    instance = Instance(InstanceSpec("dp", 16, 120, 0), "cuda")  # above capacity: every step is taken
    settings = SolverSettings(max_steps=96, check_every=32)
    train_adam(instance, 16, SolverSettings(max_steps=2))  # warm-up: kernels compiled, tables on the device
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trained = train_adam(instance, 16, settings)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert trained.status == "max_steps" and len(syncs) <= 96 // 32 + 3, [str(w.message) for w in syncs[:5]]


@pytest.mark.cuda
@cuda
def test_gpu_stops_alike_every_k_and_agrees_with_the_cpu_on_easy_verdicts():
    for index in (0, 3, 4, 6, len(CASES) - 1):
        case = CASES[index]
        runs = [train_adam(Instance(InstanceSpec(*case[:4]), "cuda"), case[4], settings_of(case, every))
                for every in (1, 7, 32)]
        for run in runs[1:]:
            assert (run.steps, run.status) == (runs[0].steps, runs[0].status)
            assert same_bits(run.w.cpu(), runs[0].w.cpu())
        if index in (0, 3, 4):  # far below capacity: float32 orders of summation do not change the verdict
            cpu = solve_with_weights(InstanceSpec(*case[:4]), "adam", case[4], settings_of(case))[0]
            gpu = solve_with_weights(InstanceSpec(*case[:4]), "adam", case[4], settings_of(case), "cuda")[0]
            assert gpu.sat and cpu.sat
