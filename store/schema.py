"""The store's schema, declared once: every variable of the three tables, its dtype, fill, units, description
and categories. The writer encodes with it, the reader decodes and completes old stores with it, a failed
probe's record is built from it (`error_record`), and docs/STORE.md's tables are printed from it
(`python -m lamcap.store.schema`; a test keeps the page equal to this module).

The kernel half of a probe record is lamcap.kernels.outcome.Outcome, whose fields carry their own
declarations; this module adds the cell and probe labels, the threshold rows and the adaptive decisions.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamcap.kernels.outcome import HIST_EDGES, Outcome
from lamcap.kernels.vocabulary import PROBLEMS, SOLVERS

SCHEMA = 2  # lamcap_schema of the stores this code writes; other values are refused
CHUNK_ROWS = 4096  # rows per chunk along a table; a batch rewrites at most a couple of chunks
PURPOSES = ("search", "curve")  # a probe of a threshold search, or an extra load for accuracy curves
LEARNERS = ("rank", "dimension")
BASES = ("initial", "width", "curvature", "width_per_device_second", "stop")


@dataclass(frozen=True)
class Field:
    """One variable of a table. `columns` names the second dimension of a 2-D variable; `absent` is what a store
    written before the variable existed reads as (None: every store has it); `missing` what a record without an
    instance holds (a probe that raised; None: the dtype's fill)."""

    name: str
    dtype: str  # numpy code: '?', 'i1' (a category's code), 'i8', 'f8'
    units: str
    description: str
    categories: tuple[str, ...] = ()
    columns: str | None = None
    absent: Any = None
    missing: Any = None

    @property
    def fill(self) -> Any:
        """The array's fill value (Zarr 3 needs one: NaN for floats, so an unwritten cell never reads as 0)."""
        return {"f8": np.nan, "?": False}.get(self.dtype, 0)

    @property
    def missing_value(self) -> Any:
        if self.missing is not None:
            return self.missing
        if self.columns is not None:
            return []
        return float("nan") if self.dtype == "f8" else self.fill

    def attrs(self) -> dict:
        """The array attributes: units, description and, for a category, CF flag_values / flag_meanings."""
        out: dict[str, Any] = {"units": self.units, "description": self.description}
        if self.categories:
            out["flag_values"] = list(range(len(self.categories)))
            out["flag_meanings"] = " ".join(self.categories)
        if self.columns == "score_bin":
            out["score_bin_edges"] = [float(e) for e in HIST_EDGES]
        return out

    def encode(self, values: list) -> np.ndarray:
        """A column of plain values as the stored array (categories as codes; None as NaN in a float column)."""
        if self.categories:
            bad = [v for v in values if v not in self.categories]
            if bad:
                raise ValueError(f"{self.name}={bad[0]!r} is not one of {self.categories}")
            return np.array([self.categories.index(v) for v in values], dtype="i1")
        if self.dtype == "f8":
            return np.array([np.nan if v is None else float(v) for v in values], dtype="f8")
        return np.array(values, dtype=self.dtype)


@dataclass(frozen=True)
class Table:
    """One append-only group: its variables share the leading dimension `dim`; `text` is a record key whose
    strings are kept in a group attribute (a JSON object from the row's key to the text), not in an array."""

    group: str
    dim: str
    fields: tuple[Field, ...]
    text: tuple[str, str] | None = None  # (record key, group attribute)

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def scalars(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.columns is None)

    @property
    def wide(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.columns is not None)


def _outcome_fields() -> tuple[Field, ...]:
    """Outcome's own declarations (lamcap.kernels.outcome.recorded) as store fields."""
    out = []
    for f in dataclasses.fields(Outcome):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(Field(f.name, meta["dtype"], meta["units"], meta["description"], meta["categories"],
                         meta["columns"], absent=default if meta["columns"] is None else None,
                         missing=meta["missing"] if meta["missing"] is not None else default))
    return tuple(out)


CELL_FIELDS = (
    Field("problem", "i1", "1", "op: shared outputs; dp: private competitors", PROBLEMS),
    Field("solver", "i1", "1", "how W was found", SOLVERS),
    Field("rho", "f8", "1", "requested rank fraction"),
    Field("rho_eff", "f8", "1", "rank / d, the rank fraction used"),
    Field("rank", "i8", "1", "rank r of W = max(1, round(rho d))"),
    Field("d", "i8", "1", "dimension of inputs and outputs"),
)
PROBE_LABELS = (
    Field("seed", "i8", "1", "disorder seed"),
    Field("p", "i8", "1", "number of associations"),
    Field("alpha", "f8", "p ln p / d^2", "load"),
    Field("purpose", "i1", "1", "search: threshold search probe; curve: extra load for accuracy curves", PURPOSES),
    Field("attempt", "i8", "1", "1 + retries after the probe's actor died"),
)
PROBES = Table("probes", "probe", CELL_FIELDS + PROBE_LABELS + _outcome_fields(), text=("error", "errors"))

THRESHOLDS = Table("thresholds", "threshold", CELL_FIELDS + (
    Field("seed", "i8", "1", "disorder seed"),
    Field("p_star", "i8", "1", "largest SAT p whose p + 1 is UNSAT; with resolution > 0 and a wider bracket, "
                               "floor((p_lo + p_hi - 1) / 2); -1 without a threshold"),
    Field("alpha_star", "f8", "p ln p / d^2", "load of the midpoint (p_lo + p_hi - 1) / 2 of the p* candidates "
                                              "p_lo .. p_hi - 1 (= p_star ln p_star / d^2 when p_hi = p_lo + 1)"),
    Field("p_lo", "i8", "1", "final bracket: SAT at p_lo (1: no SAT probe, p = 1 is SAT by definition)"),
    Field("p_hi", "i8", "1", "final bracket: UNSAT at p_hi (-1: none)"),
    Field("n_probes", "i8", "1", "search probes spent on this (cell, seed)"),
    Field("monotone", "?", "1", "every SAT probe of this seed lies below every UNSAT probe"),
    Field("complete", "?", "1", "the search reached a threshold; if false, p_star is -1 and the group attribute "
                                "'reasons' says why (a probe that kept failing, or p_max still SAT)"),
), text=("reason", "reasons"))

DECISIONS = Table("decisions", "decision", (
    Field("learner", "i1", "1", "rank: a RankLearner per (problem, solver, d); dimension: a DimensionLearner per "
                                "(problem, solver, rho)", LEARNERS),
    CELL_FIELDS[0], CELL_FIELDS[1],
    Field("d", "i8", "1", "the rank learner's dimension (-1 for the dimension learner)"),
    Field("rho", "f8", "1", "the dimension learner's requested rank fraction (NaN for the rank learner)"),
    Field("round", "i8", "1", "the learner's decision number, from 0 (its first round)"),
    Field("basis", "i1", "1", "initial: first round; width / curvature: the rank gap chosen by width or by the "
                              "interpolant's largest miss; width_per_device_second: the dimension learner's greedy "
                              "plan; stop: the learner stopped (the log's 'reason' says why)", BASES),
    Field("n_chosen", "i8", "1", "what the decision added: ranks (rank learner: one cell each, with every seed) or "
                                 "seeds (dimension learner: one threshold search each)"),
    Field("n_evidence", "i8", "1", "results it was taken on: cells with a median alpha* (rank) or seeds with a "
                                   "threshold (dimension)"),
    Field("gap_score", "f8", "p ln p / d^2", "rank: the chosen gap's score, the interpolant's largest possible miss "
                                             "(basis curvature) or the gap's width in rho (basis width); NaN "
                                             "otherwise"),
    Field("alpha_inf", "f8", "p ln p / d^2", "dimension: the fit's alpha_inf from the thresholds told so far"),
    Field("width", "f8", "p ln p / d^2", "dimension: width (hi - lo) of the alpha_inf interval so far"),
    Field("predicted_width", "f8", "p ln p / d^2", "dimension: the width predicted once the chosen seeds are in"),
    Field("target", "f8", "p ln p / d^2", "dimension: the rule's target width"),
    Field("spent_seconds", "f8", "device-s", "dimension: cost-model device-seconds of every earlier batch "
                                             "(all told)"),
    Field("added_seconds", "f8", "device-s", "dimension: cost-model device-seconds of the batches this decision "
                                             "adds"),
    Field("budget_seconds", "f8", "device-s", "dimension: the rule's budget"),
))
TABLES = (PROBES, THRESHOLDS, DECISIONS)
OPTIONAL_GROUPS = ("decisions",)  # a store written before adaptive axes has no such group: read as empty


def probe_key(record: dict) -> tuple:
    """The identity of a probe record: (problem, solver, rho, d, seed, p, purpose); a key is never stored twice."""
    return (record["problem"], record["solver"], float(record["rho"]), int(record["d"]),
            int(record["seed"]), int(record["p"]), record["purpose"])


def threshold_key(row: dict) -> tuple:
    """The identity of a threshold row: (problem, solver, rho, d, seed)."""
    return (row["problem"], row["solver"], float(row["rho"]), int(row["d"]), int(row["seed"]))


OUTCOME_NAMES = tuple(f.name for f in dataclasses.fields(Outcome))


def error_record(labels: dict, device: str, message: str) -> dict:
    """The record of a probe that raised or whose actor kept dying: its labels (cell and probe fields), every
    outcome field at its missing value, status 'error' (never SAT) and the message."""
    outcome = {name: PROBES[name].missing_value for name in OUTCOME_NAMES}
    return {**labels, **outcome, "device": device, "status": "error", "error": message}


def threshold_relations(row: dict) -> str:
    """'' when a threshold row's p_lo, p_hi, p_star and alpha_star agree as docs/STORE.md states, else what breaks.

    A complete row: 1 <= p_lo < p_hi, p_star = floor((p_lo + p_hi - 1) / 2) and alpha_star the load of that
    midpoint (p_star itself when the bracket is exact); an incomplete row: p_star = -1 and alpha_star NaN."""
    p_lo, p_hi, p_star, alpha, d = (int(row["p_lo"]), int(row["p_hi"]), int(row["p_star"]),
                                    float(row["alpha_star"]), int(row["d"]))
    if not row.get("complete", True):
        if p_star != -1 or not math.isnan(alpha):
            return f"incomplete but p_star = {p_star}, alpha_star = {alpha!r} (expected -1 and NaN)"
        return ""
    if not 1 <= p_lo < p_hi:
        return f"bracket p_lo = {p_lo}, p_hi = {p_hi} is not 1 <= p_lo < p_hi"
    mid = (p_lo + p_hi - 1) / 2
    if p_star != math.floor(mid):
        return f"p_star = {p_star} but the bracket [{p_lo}, {p_hi}] gives floor((p_lo + p_hi - 1) / 2) = " \
               f"{math.floor(mid)}"
    expected = mid * math.log(mid) / d**2 if mid >= 1 else float("nan")
    if not math.isclose(alpha, expected, rel_tol=1e-9, abs_tol=1e-12):
        return f"alpha_star = {alpha!r} but the bracket [{p_lo}, {p_hi}] at d = {d} gives {expected!r}"
    return ""


# ---- the tables of docs/STORE.md ------------------------------------------------------------------------
def markdown(table: Table) -> str:
    """The table's variables as the markdown table docs/STORE.md shows."""
    lines = ["| variable | dims | dtype | units | description |", "|---|---|---|---|---|"]
    for f in table.fields:
        dims = f"{table.dim}, {f.columns}" if f.columns else table.dim
        dtype = {"?": "bool", "i1": "int8 code", "i8": "int64", "f8": "float64"}[f.dtype]
        text = f.description + (f" (categories: `{' '.join(f.categories)}`)" if f.categories else "")
        if f.absent is not None:
            text += f"; a store written before it existed reads it as `{f.absent!r}`"
        lines.append(f"| `{f.name}` | {dims} | {dtype} | {f.units} | {text} |")
    return "\n".join(lines)


def markdown_all() -> str:
    """Every table, each under its marker comment (what docs/STORE.md holds between the markers)."""
    return "\n\n".join(f"<!-- schema: {t.group} -->\n{markdown(t)}\n<!-- end schema: {t.group} -->" for t in TABLES)


if __name__ == "__main__":
    print(markdown_all())
