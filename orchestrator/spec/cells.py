"""The units of a sweep: a cell (problem, solver, rank fraction, dimension) and a probe (cell, seed, p)."""
from __future__ import annotations

from dataclasses import dataclass

from lamcap.predictions.units import alpha_of, rank_of


@dataclass(frozen=True, order=True)
class Cell:
    """One (problem, solver, requested rank fraction rho, dimension d) of a sweep."""

    problem: str
    solver: str
    rho: float
    d: int

    @property
    def rank(self) -> int:
        """r = max(1, round(rho d)), Python's round (half to even)."""
        return rank_of(self.rho, self.d)

    @property
    def rho_eff(self) -> float:
        """The rank fraction actually used: rank / d."""
        return self.rank / self.d

    @property
    def theory_kind(self) -> str:
        """Which finite-size prediction guesses this cell's p*: 'hebbian' or 'optimal'."""
        return "hebbian" if self.solver == "hebbian" else "optimal"


@dataclass(frozen=True, order=True)
class Probe:
    """One (cell, seed, p): build the instance, solve, verify. purpose: 'search' or 'curve'."""

    cell: Cell
    seed: int
    p: int
    purpose: str = "search"

    @property
    def key(self) -> tuple:
        """Hashable identity; a probe with this key is never written twice."""
        c = self.cell
        return (c.problem, c.solver, c.rho, c.d, self.seed, self.p, self.purpose)

    @property
    def alpha(self) -> float:
        """Load alpha = p ln p / d^2."""
        return alpha_of(self.p, self.cell.d)
