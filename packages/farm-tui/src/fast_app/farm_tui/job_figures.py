"""The farm's figures by function and by minute, as the dashboard shows them: read from
the supervisors' snapshots (leniently: a snapshot from another version shows what it
has) and merged over the supervisors by ``fast_app.farm.function_figures``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from fast_app.farm.function_figures import FunctionRow, function_rows, merged_history
from fast_app.farm.messages.job_figures import FunctionFigures, MinuteTotals

__all__ = ["FarmFigures", "farm_figures"]


@dataclass(frozen=True, slots=True)
class FarmFigures:
    """What the Functions screen shows.

    Attributes:
        functions: each function of each queue, busiest first.
        history: per-minute totals of every supervisor, oldest first (the last minute
            is the current one, partial).
        supervisors: how many supervisors reported figures.
        newest_at: Unix time of the newest snapshot they come from (``None``: none).
    """

    functions: tuple[FunctionRow, ...]
    history: tuple[MinuteTotals, ...]
    supervisors: int
    newest_at: float | None


def farm_figures(snapshots: Iterable[Mapping[str, Any]]) -> FarmFigures:
    """The figures of ``snapshots`` (as received), merged."""
    reports: list[tuple[float, list[FunctionFigures]]] = []
    histories: list[list[MinuteTotals]] = []
    newest_at: float | None = None
    for snapshot in snapshots:
        at = snapshot.get("at")
        if not isinstance(at, int | float):
            continue
        functions = _read(list[FunctionFigures], snapshot.get("functions"))
        history = _read(list[MinuteTotals], snapshot.get("history"))
        if not functions and not history:
            continue  # a supervisor from before these figures
        reports.append((float(at), functions))
        histories.append(history)
        newest_at = float(at) if newest_at is None else max(newest_at, float(at))
    return FarmFigures(
        functions=tuple(function_rows(reports)),
        history=tuple(merged_history(histories)),
        supervisors=len(reports),
        newest_at=newest_at,
    )


def _read(kind: type[list[Any]], value: object) -> list[Any]:
    # Typed again, strictly: a part that does not convert is left out, not guessed at.
    if not isinstance(value, list):
        return []
    try:
        return list(msgspec.convert(value, kind))
    except msgspec.ValidationError:
        return []
