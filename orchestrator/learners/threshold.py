"""Ask/tell search for one (cell, seed)'s critical p* on nested disorder (python-adaptive style).

Pure logic: no Ray, no files, no clocks. The learner's next proposals are a function of what it
has been told and what is pending only, never of the order of events, so a learner replayed from
a store proposes exactly what the interrupted one would have.

The rule, on integer p >= 2 (p = 1 is SAT by definition: one association has no competitor):
  * hi = the smallest UNSAT p told; lo = the largest SAT p below hi (1 if none).
    The answer is p* = lo once hi = lo + 1 ("the first violation", as in the paper).
    A SAT p above hi (a non-monotone outcome, possible for gradient solvers) is kept in the
    record and sets monotone = False, but never moves the bracket.
  * Bracketing from the guess g: a = max(2, floor(0.85 g)), b = max(a + 1, ceil(1.15 g)),
    s0 = b - a. With nothing known it probes a, then b. While no UNSAT is known it climbs the
    rungs b + s0 (2^(k+1) - 2), k = 1, 2, ... (each step twice the last); while no SAT is known
    below hi it descends a - s0 (2^(k+1) - 2), clamped at 2. End points come before interiors.
  * Inside a bracket [lo, hi]: bisection (n = 1) or k-section (n > 1): the pending points in the
    bracket cut it into gaps; each new point goes to the gap whose widest piece is widest (relative
    to the tolerance below), and the points of a gap are evenly spaced in it.
  * Resolution r (relative, 0 <= r < 0.5; 0 = exact): the search is done once
    hi - lo <= max(1, r lo). Then p* lies in [lo, hi - 1]; the learner reports the midpoint of
    those candidates, p_mid = (lo + hi - 1) / 2 (= lo when the bracket is exact), and p_star =
    floor(p_mid). A gap [x, y] is not cut further once its pieces are <= max(1, r x) wide.

Cost with a monotone oracle, asking one point at a time, exact (r = 0): if p* needs k expansions (k = 0 when
a <= p* < b), the first bracket has width W <= s0 2^k and the search takes at most
ceil(log2 W) + 2 + k probes going up, ceil(log2 W) + 1 + k going down (so ceil(log2 W) + 3 for
k <= 1). A resolution r saves about log2(r p*) of the last bisection steps when r p* > 1.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from lamcap import predictions as theory
from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.base import Learner
from lamcap.predictions.units import alpha_of

LOW_FACTOR = 0.85  # the initial bracket is [floor(0.85 g), ceil(1.15 g)]
HIGH_FACTOR = 1.15
P_MIN = 2


def initial_bracket(guess_p: float, p_max: int | None = None) -> tuple[int, int]:
    """(a, b): the first two probes around the guess, 2 <= a < b (<= p_max)."""
    a = max(P_MIN, math.floor(LOW_FACTOR * guess_p))
    b = max(a + 1, math.ceil(HIGH_FACTOR * guess_p))
    if p_max is not None:
        b = min(b, p_max)
        a = min(a, b - 1)
    return a, b


def check_resolution(resolution: float) -> float:
    """The relative resolution as a float; InvalidInput naming it unless 0 <= resolution < 0.5."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or not 0 <= resolution < 0.5:
        raise InvalidInput(f"resolution={resolution!r} must be a number in [0, 0.5) (0: the exact p*)")
    return float(resolution)


@dataclass(frozen=True)
class ThresholdResult:
    """Where one (cell, seed)'s search stands; p_star and p_mid are None until it is done.

    p_lo: SAT (1 stands for the trivially SAT p = 1), p_hi: UNSAT (None while no UNSAT is known).
    p_mid: the midpoint (p_lo + p_hi - 1) / 2 of the p* candidates p_lo .. p_hi - 1; p_star its
    floor (both equal p_lo when the bracket is exact, p_hi = p_lo + 1).
    """

    p_star: int | None
    p_lo: int
    p_hi: int | None
    n_probes: int
    monotone: bool
    probes: dict[int, bool] = field(default_factory=dict)
    p_mid: float | None = None
    failure: str = ""  # why the search stopped short of a threshold (a probe that kept failing), or ""


class ThresholdLearner(Learner):
    """Ask/tell search for one (cell, seed)'s critical p* on nested disorder (python-adaptive style)."""

    def __init__(self, cell, seed: int, guess_p: float, p_max: int | None = None, resolution: float = 0.0) -> None:
        if isinstance(guess_p, bool) or not isinstance(guess_p, (int, float)) \
                or not math.isfinite(guess_p) or guess_p <= 0:
            raise InvalidInput(f"guess_p={guess_p!r} must be a positive finite number")
        if p_max is not None and (isinstance(p_max, bool) or not isinstance(p_max, int) or p_max < 3):
            raise InvalidInput(f"p_max={p_max!r} must be an integer >= 3 or None")
        self.cell = cell
        self.seed = seed
        self.guess_p = guess_p
        self.p_max = p_max
        self.resolution = check_resolution(resolution)
        self.a, self.b = initial_bracket(guess_p, p_max)
        self._probes: dict[int, bool] = {}
        self._pending: set[int] = set()
        self._failure = ""

    # ---- state -------------------------------------------------------------------------------
    @property
    def pending(self) -> set[int]:
        """The p values asked for and neither told nor forgotten."""
        return set(self._pending)

    @property
    def probes(self) -> dict[int, bool]:
        return dict(self._probes)

    def bracket(self) -> tuple[int, int | None]:
        """(lo, hi): the smallest UNSAT p (None if none) and the largest SAT p below it (1 if none)."""
        unsat = [p for p, sat in self._probes.items() if not sat]
        hi = min(unsat) if unsat else None
        sat = [p for p, s in self._probes.items() if s and (hi is None or p < hi)]
        return (max(sat) if sat else 1), hi

    def tolerance(self, lo: int) -> float:
        """The widest final bracket allowed above a SAT lo: max(1, resolution lo)."""
        return max(1.0, self.resolution * lo)

    @property
    def done(self) -> bool:
        """p* is known to the resolution: SAT at lo (or lo = 1), UNSAT at hi, hi - lo <= max(1, r lo)."""
        lo, hi = self.bracket()
        return hi is not None and hi - lo <= self.tolerance(lo)

    @property
    def exhausted(self) -> bool:
        """p_max is SAT and no UNSAT is known: the bracket cannot be closed below p_max."""
        return self.p_max is not None and self.bracket()[1] is None and self._probes.get(self.p_max, False)

    @property
    def failed(self) -> bool:
        """A probe of this seed kept failing: the search stops there, without a threshold."""
        return bool(self._failure)

    @property
    def monotone(self) -> bool:
        """False when some SAT p lies above some UNSAT p."""
        hi = self.bracket()[1]
        return hi is None or not any(sat and p > hi for p, sat in self._probes.items())

    def result(self) -> ThresholdResult:
        lo, hi = self.bracket()
        p_mid = (lo + hi - 1) / 2 if self.done and not self.failed else None
        return ThresholdResult(p_star=math.floor(p_mid) if p_mid is not None else None, p_lo=lo, p_hi=hi,
                               n_probes=len(self._probes), monotone=self.monotone,
                               probes=dict(sorted(self._probes.items())), p_mid=p_mid, failure=self._failure)

    # ---- tell / forget -----------------------------------------------------------------------
    def tell(self, p: int, sat: bool) -> None:
        """Record a verdict (asked or not: a replay from a store); a repeat with the same verdict is a no-op."""
        if isinstance(p, bool) or not isinstance(p, int) or p < P_MIN:
            raise InvalidInput(f"p={p!r} must be an integer >= {P_MIN}")
        sat = bool(sat)
        if p in self._probes and self._probes[p] != sat:
            raise ValueError(f"p={p} told {'SAT' if sat else 'UNSAT'} after {'SAT' if self._probes[p] else 'UNSAT'}:"
                             " a probe is a pure function of its spec, so two verdicts mean a bug")
        self._probes[p] = sat
        self._pending.discard(p)

    def fail(self, p: int, reason: str) -> None:
        """The probe at p failed for good (an error is never a verdict): stop this seed's search there."""
        self._pending.discard(p)
        if not self._failure:
            self._failure = f"p={p}: {reason}" if reason else f"p={p} failed"

    def forget(self, p: int) -> None:
        """A pending probe was lost (its actor died): it may be asked again."""
        self._pending.discard(p)

    # ---- ask ---------------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[int]:
        """Up to n new p values, marked pending; [] when nothing useful can be probed now."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInput(f"n={n!r} must be an integer >= 0")
        if n == 0 or self.done or self.exhausted or self.failed:
            return []
        lo, hi = self.bracket()
        if not self._probes:
            points = self._ladder(None, n)
        elif hi is None:
            points = self._ladder(lo, n)
        elif lo == 1:  # no SAT below the smallest UNSAT yet: find a lower end first
            points = self._ladder(hi, n)
        else:
            points = self._ksection(lo, hi, n)
        self._pending.update(points)
        return points

    def _free(self, p: int) -> bool:
        return p not in self._probes and p not in self._pending

    def _rungs(self, up: bool) -> Iterator[int]:
        """The ladder outwards from the initial bracket: b (or a), then offsets s0 (2^(k+1) - 2)."""
        s0 = self.b - self.a
        for k in itertools.count():
            offset = s0 * (2 ** (k + 1) - 2)
            if up:
                p = self.b + offset if self.p_max is None else min(self.b + offset, self.p_max)
                yield p
                if p == self.p_max:
                    return
            else:
                p = max(P_MIN, self.a - offset)
                yield p
                if p == P_MIN:
                    return

    def _ladder(self, edge: int | None, n: int) -> list[int]:
        """Up to n free rungs: above the largest SAT (edge = lo, no UNSAT known), below the
        smallest UNSAT (edge = hi, no SAT below it), or, knowing nothing (edge None), a, b and
        then alternately up and down."""
        if edge is None:
            both = itertools.zip_longest(self._rungs(False), self._rungs(True))
            order = (p for pair in both for p in pair if p is not None)
        elif self.bracket()[1] is None:
            order = (p for p in self._rungs(True) if p > edge)
        else:
            order = (p for p in self._rungs(False) if p < edge)
        out: list[int] = []
        for p in order:
            if len(out) == n:
                break
            if self._free(p) and p not in out:
                out.append(p)
        return out

    def _ksection(self, lo: int, hi: int, n: int) -> list[int]:
        """Up to n free points splitting (lo, hi), cut by the pending points in it, as evenly as possible."""
        cuts = sorted({lo, hi} | {p for p in self._pending if lo < p < hi})
        gaps = [(x, y) for x, y in zip(cuts, cuts[1:])]
        counts = [0] * len(gaps)

        def excess(i: int) -> float:  # piece width over the gap's tolerance (exact search: the width)
            (x, y), k = gaps[i], counts[i]
            return (y - x) / (k + 1) / self.tolerance(x)

        for _ in range(n):
            widest = max(range(len(gaps)), key=lambda i: (excess(i), -i))
            if excess(widest) <= 1:
                break  # every piece is already within the resolution: nothing left to learn now
            counts[widest] += 1
        out: list[int] = []
        for (x, y), k in zip(gaps, counts):
            points = {x + round(i * (y - x) / (k + 1)) for i in range(1, k + 1)}
            out += sorted(p for p in points if x < p < y and self._free(p))
        return out


@functools.lru_cache(maxsize=4096)
def theory_guess(cell) -> float:
    """The finite-size theory's critical p for the cell's solver kind and problem: every search's first guess."""
    try:
        return float(theory.predicted_critical_p(cell.d, cell.rho_eff, cell.theory_kind, cell.problem))
    except InvalidInput as exc:
        raise InvalidInput(f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d}: {exc}") from None


def threshold_row(learner: ThresholdLearner) -> dict:
    """The store row of a finished search; an incomplete one (p_star = -1) says why in `reason`.

    alpha_star is the load of the midpoint of the p* candidates p_lo .. p_hi - 1 (= p_star when exact).
    """
    res, cell = learner.result(), learner.cell
    p_star = res.p_star if res.p_star is not None else -1
    if res.failure:
        reason = res.failure
    elif p_star == -1:
        reason = f"p={res.p_lo} (the search's cap p_max) is still SAT: the threshold lies above what may be probed"
    else:
        reason = ""
    return {
        "problem": cell.problem, "solver": cell.solver, "rho": float(cell.rho), "rho_eff": cell.rho_eff,
        "rank": cell.rank, "d": cell.d, "seed": learner.seed, "p_star": p_star,
        "alpha_star": alpha_of(res.p_mid, cell.d) if res.p_mid is not None else math.nan, "p_lo": res.p_lo,
        "p_hi": res.p_hi if res.p_hi is not None else -1, "n_probes": res.n_probes, "monotone": res.monotone,
        "complete": not reason, "reason": reason,
    }
