"""Lenient readers of snapshot fields: a missing or odd value gets a neutral default.

Snapshots are JSON from other processes (other versions, maybe): the dashboard reads
every field through these rather than trusting its type, so that an odd one shows as
unknown instead of crashing the screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "integer",
    "items",
    "mapping",
    "number",
    "optional_integer",
    "optional_number",
    "text",
]


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> list[Any]:
    """``value`` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: object, default: str) -> str:
    """``value`` if it is a string, else ``default``."""
    return value if isinstance(value, str) else default


def optional_number(value: object) -> float | None:
    """``value`` as a finite float; ``None`` for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def number(value: object, default: float = 0.0) -> float:
    """``value`` as a finite float, else ``default``."""
    read = optional_number(value)
    return default if read is None else read


def optional_integer(value: object) -> int | None:
    """``value`` as an integer (truncated); ``None`` when it is not a finite number."""
    read = optional_number(value)
    return None if read is None else int(read)


def integer(value: object, default: int = 0) -> int:
    """``value`` as an integer, else ``default``."""
    read = optional_integer(value)
    return default if read is None else read
