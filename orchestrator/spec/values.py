"""Checks shared by the spec's parsers: plain integers and reals (a bool is neither), list fields."""
from __future__ import annotations

from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def list_problems(name: str, value: Any, ok, what: str) -> list[str]:
    """Messages for a list field: not a non-empty list, bad elements, duplicates."""
    if not isinstance(value, (list, tuple)):
        return [f"{name}={value!r} must be a list"]
    if not value:
        return [f"{name} is empty: give at least one value"]
    out = [f"{name}: {v!r} {what}" for v in value if not ok(v)]
    out += [f"{name}: {v!r} appears twice" for i, v in enumerate(value) if v in value[:i]]
    return out
