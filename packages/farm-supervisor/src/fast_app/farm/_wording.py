"""Counts in messages: ``1 worker``, ``2 workers``."""

from __future__ import annotations

__all__ = ["counted"]


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, plural unless it is 1: ``counted(1, "job")`` is ``1 job``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
