"""Exact oracle for full-rank W: the max-margin linear program, solved by HiGHS with constraint generation.

The program, over vec(W) (d^2 variables) and the margin t:

    maximise t   subject to   (y_mu - y_nu)^T W x_mu >= t   for every pair mu != nu,
                              -1 <= W_ij <= 1,   t >= 0.

(y_mu: the target of input mu; y_nu: a competitor.) It is always feasible (W = 0, t = 0) and
bounded (t <= ||(y_mu - y_nu) x_mu^T||_1), so HiGHS always has an optimum t* to return. The
solution set of the association problem is a cone, so the instance is SAT exactly when t* > 0.
No upper bound t <= 1 is imposed: the box on W already bounds t, and a cap would clip the margin
observable at low load (t* ~ 3 at half the threshold load for d = 8). With that normalisation
t* is also the l1 distance from the origin to the convex hull of the constraint rows (LP duality),
0 exactly when UNSAT.

Constraint generation: start from the K smallest-margin pairs of each mu under a warm-start W
(lamcap.kernels.solvers.margins: Frank-Wolfe on the soft-min margin); solve; scan all p (p - 1)
pairs of the solution in float64 (streaming); add the K smallest of every row whose margin is
below the subset's optimum; re-solve. New rows go into the live HiGHS
model, so dual simplex restarts from the previous optimal basis.

The verdict comes from two float64 bounds on t* of the FULL program, never from HiGHS's status alone:
  * lower = the smallest margin of the returned W over all pairs (the scan; verification agrees);
  * upper = ||sum_k lam_k a_k||_1 / sum_k lam_k with lam >= 0 the row duals of the subset (weak
    duality: any such lam bounds the subset's, hence the full program's, optimum).
Both tolerances are in units of d^2, the scale of a margin: |a_k . vec(W)| <= ||a_k||_1, about
0.9 d^2 for W in the box. SAT when lower > MARGIN_TOL d^2 (1e-8 d^2): the returned W separates
every pair, far above float64 rounding (about 1e-16 d^2), so verification agrees. UNSAT when
upper <= ZERO_TOL d^2 (1e-9 d^2): no W in the box has every margin above that. At UNSAT probes
the dual bound is HiGHS's rounding in the duals: at most 3e-13 d^2 over the 246 instances of
tests/kernels/test_lp.py and the probes of benchmarks/lp.py (d <= 36), so ZERO_TOL leaves a wide
berth; the SAT probes there have t* >= 1e-4 d^2, as far above MARGIN_TOL.
In between (or when HiGHS cannot tighten the bounds) the probe raises LPUndecided, which
the orchestrator records as an `error` whose message carries both bounds: never SAT, never
silently UNSAT. A HiGHS status other than optimal raises the same way.

A SAT probe goes on generating constraints until no pair's margin is below t (1 - GAP_REL) - HIGHS_SLACK,
t the subset's optimum: the recorded margin (`lower`, achieved by the returned W) is then the
optimum of the full program to within that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.disorder import Instance
from lamcap.kernels.settings import LP_MAX_D, LP_MAX_P
from lamcap.kernels.solvers.margins import PairMargins, Pairs

MAX_ROUNDS = 200
MARGIN_TOL = 1e-8  # SAT needs a W whose smallest margin exceeds MARGIN_TOL d^2; see the module docstring
ZERO_TOL = 1e-9  # UNSAT needs the dual bound on t* at or below ZERO_TOL d^2
GAP_REL = 1e-4  # relative gap at which the max-margin W is accepted as optimal
HIGHS_SLACK = 1e-6  # 10x HiGHS's primal feasibility tolerance: a subset row may miss t by this much


class LPUndecided(RuntimeError):
    """HiGHS returned no optimum, or t* lies too close to 0 to call: the probe is an error, never SAT."""


@dataclass(frozen=True)
class LPResult:
    """The verdict and the bounds [lower, upper] on the optimal raw margin t* of the full program."""

    sat: bool
    w: torch.Tensor  # float64 d x d: the max-margin W when SAT, zeros when UNSAT
    lower: float  # smallest margin of w over all pairs (0 for the zero W)
    upper: float  # dual bound on t*
    rounds: int
    n_constraints: int


def check_lp_size(d: int, p: int) -> None:
    """Raise InvalidInput when the instance is beyond what this oracle handles."""
    if d > LP_MAX_D:
        raise InvalidInput(f"d={d} too large for the lp solver (limit d <= {LP_MAX_D})")
    if p > LP_MAX_P:
        raise InvalidInput(f"p={p} too large for the lp solver (limit p <= {LP_MAX_P})")


# Every solve: one thread (actors run one each), no console output, no presolve (nothing to remove in
# a dense program; a re-solve from a basis skips it anyway).
HIGHS_OPTIONS = {"output_flag": False, "threads": 1, "presolve": "off"}


class MarginProgram:
    """The subset program in a live HiGHS model: columns vec(W) (row-major) in [-1, 1], then t >= 0.

    Row k: a_k . vec(W) - t >= 0 with a_k = (y_mu - y_nu) x_mu^T flattened, so a_k . vec(W) is the
    pair's margin s[mu,mu] - s[mu,nu].
    """

    def __init__(self, instance: Instance) -> None:
        import highspy  # not highspy.Highs(): its constructor prints a banner on the C stdout

        self._hs = highspy
        self._h = getattr(highspy, "_Highs", highspy.Highs)()
        for name, value in HIGHS_OPTIONS.items():
            self._h.setOptionValue(name, value)
        d = instance.d
        self.d, self.n = d, d * d
        self._x = instance.inputs.double().cpu()
        cost = np.zeros(self.n + 1)
        cost[self.n] = -1.0  # minimise -t
        lower, upper = -np.ones(self.n + 1), np.ones(self.n + 1)
        lower[self.n], upper[self.n] = 0.0, highspy.kHighsInf
        empty_i, empty_f = np.zeros(0, dtype=np.int32), np.zeros(0)
        self._h.addCols(self.n + 1, cost, lower, upper, 0, empty_i, empty_i, empty_f)
        self._mu: list[np.ndarray] = []
        self._diff: list[torch.Tensor] = []

    @property
    def n_rows(self) -> int:
        return sum(len(m) for m in self._mu)

    def add(self, pairs: Pairs) -> None:
        """Append one row per pair to the live model (the basis of the last solve stays valid)."""
        r, width = len(pairs.mu), self.n + 1
        a = torch.einsum("ki,kj->kij", pairs.diff, self._x[pairs.mu]).reshape(r, self.n)
        values = torch.cat([a, -torch.ones(r, 1, dtype=torch.float64)], dim=1).numpy().reshape(-1)
        starts = np.arange(r, dtype=np.int32) * width
        index = np.tile(np.arange(width, dtype=np.int32), r)
        self._h.addRows(r, np.zeros(r), np.full(r, self._hs.kHighsInf), values.size, starts, index, values)
        self._mu.append(pairs.mu)
        self._diff.append(pairs.diff)

    def solve(self) -> tuple[float, torch.Tensor, float]:
        """(t of the subset, its optimal W as float64 d x d, the dual bound on t*); LPUndecided unless optimal."""
        self._h.run()
        status = self._h.getModelStatus()
        if status != self._hs.HighsModelStatus.kOptimal:
            raise LPUndecided(f"HiGHS returned model status {self._h.modelStatusToString(status)!r} "
                              f"on {self.n_rows} constraints")
        solution = self._h.getSolution()
        x = np.asarray(solution.col_value)
        w = torch.from_numpy(x[: self.n].reshape(self.d, self.d).copy())
        return float(x[self.n]), w, self._dual_bound(np.asarray(solution.row_dual))

    def _dual_bound(self, row_dual: np.ndarray) -> float:
        """||sum_k lam_k a_k||_1 / sum_k lam_k for lam = max(dual, 0): an upper bound on t* (weak duality)."""
        lam = torch.from_numpy(np.maximum(row_dual, 0.0))
        total = float(lam.sum())
        if total <= 0.0:
            return math.inf
        mu = torch.from_numpy(np.concatenate(self._mu))
        g = torch.zeros(self._x.shape[0], self.d, dtype=torch.float64)
        g.index_add_(0, mu, lam[:, None] * torch.cat(self._diff))  # G_mu = sum over mu's rows of lam_k diff_k
        return float((g.T @ self._x).abs().sum()) / total


def pairs_per_row(d: int, p: int) -> int:
    """K, the pairs per input added each round: enough for about 2 d^2 rows in the first round."""
    return min(p - 1, max(2, math.ceil(2 * d * d / p)))


def _unseen(pairs: Pairs, seen: np.ndarray, p: int) -> Pairs:
    """The pairs not yet in the program, marking them seen."""
    key = pairs.mu.astype(np.int64) * p + pairs.nu
    fresh = ~seen[key]
    seen[key[fresh]] = True
    return Pairs(pairs.mu[fresh], pairs.nu[fresh], pairs.diff[torch.from_numpy(fresh)])


def _undecided(lower: float, upper: float, d: int) -> LPUndecided:
    return LPUndecided(f"lp cannot decide: the optimal margin t* lies in [{lower:.3g}, {upper:.3g}], between "
                       f"ZERO_TOL d^2 = {ZERO_TOL * d * d:.3g} (UNSAT) and MARGIN_TOL d^2 = "
                       f"{MARGIN_TOL * d * d:.3g} (SAT)")


def solve_lp(instance: Instance) -> LPResult:
    """Decide by constraint generation whether some full-rank W stores every association; see the module doc."""
    d, p = instance.d, instance.p
    check_lp_size(d, p)
    k = pairs_per_row(d, p)
    program, margins = MarginProgram(instance), PairMargins(instance)
    seen = np.zeros(p * p, dtype=bool)
    pairs, _, _ = margins.scan(margins.warm_start(instance), k, below=math.inf)
    program.add(_unseen(pairs, seen, p))
    for rounds in range(1, MAX_ROUNDS + 1):
        t, w, upper = program.solve()
        if upper <= ZERO_TOL * d * d:
            return LPResult(False, torch.zeros(d, d, dtype=torch.float64), 0.0, upper, rounds, program.n_rows)
        if t <= MARGIN_TOL * d * d:  # t* <= t: no SAT certificate can come, and the dual bound is not small enough
            raise _undecided(0.0, upper, d)
        target = t * (1.0 - GAP_REL) - HIGHS_SLACK  # HiGHS meets the subset's rows only to its tolerance
        pairs, lower, n_below = margins.scan(w, k, below=target)
        if n_below == 0:
            if lower > MARGIN_TOL * d * d:
                return LPResult(True, w, lower, upper, rounds, program.n_rows)
            raise _undecided(lower, upper, d)
        fresh = _unseen(pairs, seen, p)
        if len(fresh.mu) == 0:
            raise LPUndecided(f"lp cannot decide: {n_below} pairs below the margin {target:.3g} are constraints "
                              f"already (HiGHS tolerance); t* lies in [{lower:.3g}, {upper:.3g}]")
        program.add(fresh)
    raise LPUndecided(f"lp: no verdict after {MAX_ROUNDS} constraint-generation rounds")
