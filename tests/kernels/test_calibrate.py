"""lamcap.kernels.calibrate's step timing against a simulated clock: Adam runs whose setup jitters."""
from __future__ import annotations

import itertools

import pytest

from lamcap.kernels import calibrate
from lamcap.kernels.calibrate import Size, time_size


class SimulatedAdam:
    """train_adam on a fake clock: each run costs setup x (1 + jitter) + steps x step seconds, the jitter
    cycling through +-10% (what materialising DP's competitors shows from run to run)."""

    def __init__(self, setup: float, step: float) -> None:
        self.setup, self.step, self.now = setup, step, 0.0
        self.jitter = itertools.cycle([-0.1, 0.1, 0.1, -0.1])

    def clock(self) -> float:
        return self.now

    def train(self, instance, rank, settings):
        self.now += self.setup * (1 + next(self.jitter)) + settings.max_steps * self.step


@pytest.mark.parametrize("setup,step", [(3.0, 0.15), (0.02, 0.001), (0.0, 0.01)])
def test_the_step_time_is_the_steps_not_the_setup_jitter(monkeypatch, setup, step):
    """DP d = 96 on this machine: ~3 s to materialise the competitors, 0.15 s a step. Four timed steps
    (the old rule) put the setup's jitter into the difference: a step estimated 13x off."""
    sim = SimulatedAdam(setup, step)
    monkeypatch.setattr(calibrate, "train_adam", sim.train)
    monkeypatch.setattr(calibrate.time, "perf_counter", sim.clock)
    monkeypatch.setattr(calibrate.time, "process_time", sim.clock)
    timings = {t.kind: t for t in time_size(Size("dp", 6, 12), "cpu", repeats=3)}
    assert timings["step"].seconds == pytest.approx(step, rel=0.1)
    assert timings["step"].cpu_seconds == pytest.approx(step, rel=0.1)
    assert timings["setup"].seconds == pytest.approx(setup, rel=0.15, abs=1e-3)


def test_device_rates_are_positive_and_ordered_as_on_every_machine():
    rates = calibrate.device_rates("cpu")
    assert set(rates) == {"flops", "flops64", "bytes_per_s", "samples_per_s"}
    assert all(v > 0 for v in rates.values())
    assert rates["flops"] > rates["samples_per_s"]  # a multiply-add is cheaper than a Gaussian sample
