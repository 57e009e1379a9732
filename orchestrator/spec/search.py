"""How thresholds are searched: the spec's [search] table (the scheduler and the learners read it)."""
from __future__ import annotations

from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.orchestrator.spec.values import is_int, is_real


@dataclass(frozen=True)
class SearchSettings:
    """How thresholds are searched; the scheduler and the learners read these, and all of them decide which
    probes a sweep visits, so a store keeps them (lamcap.orchestrator.spec.SweepSpec.compatible_with)."""

    curve_points: int = 0  # extra loads per cell around its median alpha* (accuracy curves)
    curve_span: float = 0.3  # their relative half-width around the median alpha*
    width: int = 1  # points a search probes per round (1: bisection; k > 1: k-section), whatever the workers
    p_max: int | None = None  # hard cap on p
    resolution: float = 0.0  # relative bracket width at which a search stops (learners.threshold); 0: exact p*

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidInput("; ".join(problems))

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        out = []
        if not is_int(self.curve_points) or self.curve_points < 0:
            out.append(f"curve_points={self.curve_points!r} must be an integer >= 0")
        if not is_real(self.curve_span) or not 0 < self.curve_span < 1:
            out.append(f"curve_span={self.curve_span!r} must be a number in (0, 1)")
        if not is_int(self.width) or not 1 <= self.width <= 64:
            out.append(f"width={self.width!r} must be an integer in 1..64 (points a search probes per round)")
        if self.p_max is not None and (not is_int(self.p_max) or self.p_max < 3):
            out.append(f"p_max={self.p_max!r} must be an integer >= 3 or absent")
        if not is_real(self.resolution) or not 0 <= self.resolution < 0.5:
            out.append(f"resolution={self.resolution!r} must be a number in [0, 0.5) (0: the exact p*)")
        return out
