"""One probe split over a gang of k devices by rows, and the sums that join the shards back.

Shard i of k owns the inputs mu in [floor(i p / k), floor((i + 1) p / k)) and only their
competitors (materialised or regenerated from the same counter-based seeds, so the instance is the
unsharded one); the split is uneven by at most one row when k does not divide p. W and the
optimiser state are replicated: every step sums what the update needs over the shards.

A ``Collective`` is how the shards sum. ``SOLO`` (k = 1) is the identity: the unsharded probe is
the k = 1 case of the same code, not a second path. ``TorchCollective`` runs on
torch.distributed (Gloo on CPU tensors, NCCL on CUDA ones). Every control-flow decision of a
sharded solve is taken on reduced values, so every rank takes the same branch and none is left
waiting in a collective. No Ray here: ``joined`` forms a process group from a rendezvous that
someone else (lamcap.orchestrator.runtime.gangs) arranged.
"""
from __future__ import annotations

import contextlib
import datetime
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.budget import largest_shard

DEFAULT_TIMEOUT_S = 300.0  # a collective (or the group's formation) that waits longer raises


def shard_rows(p: int, index: int, count: int) -> tuple[int, int]:
    """[mu0, mu1): the inputs shard `index` of `count` owns, floor(i p / k) to floor((i + 1) p / k)."""
    return index * p // count, (index + 1) * p // count


def check_shards(shards: int, p: int, what: str = "shards") -> None:
    """InvalidInput unless 1 <= shards <= p (every shard owns at least one input)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InvalidInput(f"{what}={shards!r} must be an integer >= 1")
    if shards > p:
        raise InvalidInput(f"{what}={shards} is more than the p={p} inputs to split (every shard needs a row)")


@dataclass(frozen=True)
class Shard:
    """Which part of a probe one process runs: shard `index` of `count`."""

    index: int = 0
    count: int = 1

    def rows(self, p: int) -> tuple[int, int]:
        return shard_rows(p, self.index, self.count)


WHOLE = Shard(0, 1)


def row_pieces(mu0: int, mu1: int, p: int, d: int, max_elements: int) -> Iterator[tuple[int, int, int, int]]:
    """(a0, a1, nu0, nu1) blocks of at most max_elements competitors covering rows [mu0, mu1) x [0, p):
    whole rows when they fit (lamcap.kernels.disorder.pieces for rows [0, p))."""
    rows = max_elements // (p * d)
    if rows >= 1:
        for a0 in range(mu0, mu1, rows):
            yield a0, min(a0 + rows, mu1), 0, p
        return
    cols = max(1, max_elements // d)
    for a0 in range(mu0, mu1):
        for nu0 in range(0, p, cols):
            yield a0, a0 + 1, nu0, min(nu0 + cols, p)


class Collective(ABC):
    """Sums (and maxima) over the shards of one probe; every rank gets the same result."""

    rank: int
    size: int
    seconds: float  # wall time spent inside collectives (waiting for the slowest rank included)
    calls: int

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)

    @abstractmethod
    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In place: t becomes the sum over ranks of t. Returns t."""

    @abstractmethod
    def max_(self, t: torch.Tensor) -> torch.Tensor:
        """In place: t becomes the elementwise maximum over ranks. Returns t."""

    @abstractmethod
    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's t (same shape on every rank), stacked in rank order: (size, *t.shape)."""

    @abstractmethod
    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """In place: t becomes rank src's t. Returns t."""

    def gather_rows(self, local: torch.Tensor, p: int) -> torch.Tensor:
        """The full (p, ...) tensor from each shard's rows (shard_rows of p), in row order."""
        if self.size == 1:
            return local
        width = largest_shard(p, self.size)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: local.shape[0]] = local
        stacked = self.gather(padded)
        parts = [stacked[i, : b - a] for i, (a, b) in enumerate(shard_rows(p, i, self.size) for i in range(self.size))]
        return torch.cat(parts)


class Solo(Collective):
    """One shard: every collective is the identity."""

    rank, size, seconds, calls = 0, 1, 0.0, 0

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        return t[None]

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        return t


SOLO = Solo()


class TorchCollective(Collective):
    """The collectives of the default torch.distributed process group (Gloo or NCCL)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.seconds, self.calls = 0.0, 0

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        with self._timed():
            self._dist.all_reduce(t, op=self._dist.ReduceOp.SUM)
        return t

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        with self._timed():
            self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX)
        return t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        out = [t.new_empty(t.shape) for _ in range(self.size)]
        with self._timed():
            self._dist.all_gather(out, t.contiguous())
        return torch.stack(out)

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        with self._timed():
            self._dist.broadcast(t, src=src)
        return t


@dataclass(frozen=True)
class Rendezvous:
    """Where and as whom one member joins its gang: rank 0 listens on address:port."""

    address: str
    port: int
    rank: int
    size: int
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.size:
            raise InvalidInput(f"rank={self.rank} must be in 0..size-1 = 0..{self.size - 1}")


def backend_for(device: str) -> str:
    """NCCL for CUDA tensors, Gloo for CPU ones."""
    return "nccl" if device == "cuda" else "gloo"


@contextlib.contextmanager
def joined(rendezvous: Rendezvous, device: str) -> Iterator[TorchCollective]:
    """Form the process group (finite timeout), yield its collective, always destroy the group after.

    One process group per process at a time: a member leaves before it can join another gang.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()  # a group a failed run left behind
    kwargs = {}
    if device == "cuda":  # Ray sets CUDA_VISIBLE_DEVICES per actor: its one GPU is cuda:0
        torch.cuda.set_device(0)
        kwargs["device_id"] = torch.device("cuda", 0)
    dist.init_process_group(backend_for(device), init_method=f"tcp://{rendezvous.address}:{rendezvous.port}",
                            rank=rendezvous.rank, world_size=rendezvous.size,
                            timeout=datetime.timedelta(seconds=rendezvous.timeout_s), **kwargs)
    try:
        yield TorchCollective()
    finally:
        dist.destroy_process_group()
