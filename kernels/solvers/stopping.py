"""The stopping rule of Adam training, decided on the device and read by the host every k steps.

The rule (per step s, before the step's update): a non-finite loss ends training as 'diverged'; when the
float32 count says every association is stored and an exact float64 count agrees, training ends as
'converged' with W_s; otherwise training goes on. Reading the loss and the count after every step makes a
GPU wait for the host (two blocking reads per step). Here each step writes its loss and count into a
device buffer, and the host reads a window of k steps at once: the first step of the window at which the
rule fires is the one a per-step read would have stopped at, because the trajectory W_0, W_1, ... does not
depend on the checks. The window's first float32 candidate keeps its W on the device (a `torch.where` per
step, no read), so that a converged probe never recomputes a step; a later candidate in the same window
(after the float64 count refused the first) is reached by replaying the window from its start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lamcap.kernels.settings import GPU_CHECK_EVERY, SolverSettings


def check_interval(settings: SolverSettings, device_type: str) -> int:
    """Steps per host read: the setting, or 1 on a CPU (a read costs nothing there) and GPU_CHECK_EVERY on a GPU."""
    if settings.check_every is not None:
        return settings.check_every
    return 1 if device_type == "cpu" else GPU_CHECK_EVERY


@dataclass(frozen=True)
class Event:
    """Where the stopping rule may fire: window step `index`, 'diverged' or 'candidate' (float32 count = p)."""

    index: int
    kind: str


class Window:
    """Per-step losses and float32 counts of up to `size` steps on the device, and the first candidate's W.

    A window of one step (a CPU's default) keeps its values as they are and reads them directly: nothing to
    gather, and its W is still the step's when the read comes (the update waits for it)."""

    def __init__(self, size: int, p: int, device: torch.device) -> None:
        self.p = p
        self.values = torch.empty((2, size), dtype=torch.float64, device=device) if size > 1 else None
        self.steps = 0
        self.kept: torch.Tensor | None = None  # W of the first candidate (when one was seen)
        self._taken: torch.Tensor | None = None
        self._single: tuple[torch.Tensor, torch.Tensor] | None = None

    def record(self, loss: torch.Tensor, stored: torch.Tensor, w: torch.Tensor) -> None:
        """Write one step's loss and count; keep W if this is the window's first candidate (no host read)."""
        if self.values is None:
            self._single, self.kept, self.steps = (loss, stored), w.detach(), 1
            return
        i = self.steps
        self.values[0, i] = loss
        self.values[1, i] = stored
        take = (self.values[1, i] == self.p) & torch.isfinite(self.values[0, i])
        w = w.detach()
        if self.kept is None:
            self.kept, self._taken = w.clone(), take
        else:
            torch.where(take & ~self._taken, w, self.kept, out=self.kept)
            self._taken = self._taken | take
        self.steps += 1

    def read(self) -> list[Event]:
        """The window's events in step order (one host read), up to the first divergence."""
        if self._single is not None:
            losses, counts = [float(self._single[0])], [float(self._single[1])]
        else:
            losses, counts = self.values[:, : self.steps].tolist()
        events = []
        for i, (loss, count) in enumerate(zip(losses, counts)):
            if not math.isfinite(loss):
                events.append(Event(i, "diverged"))
                break
            if count == self.p:
                events.append(Event(i, "candidate"))
        return events
