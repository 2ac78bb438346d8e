"""``fast-app status``'s part about functions and the last hour: from the figures the
supervisors keep (``fast_app.farm.function_figures``), as text and as JSON."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from fast_app.farm.function_figures import FunctionRow, function_rows, merged_history
from fast_app.farm.messages import Snapshot
from fast_app.farm.messages.job_figures import MinuteTotals

__all__ = ["function_lines", "functions_json", "history_json"]

#: Functions the text lists (``--json`` has them all).
_LISTED = 10
_HEADER = ("FUNCTION", "QUEUE", "RUNS/MIN", "FAILED", "DEAD", "HARD", "P50", "P95")
_RIGHT_ALIGNED = {2, 3, 4, 5, 6, 7}


def functions_json(snapshots: Sequence[Snapshot]) -> list[dict[str, Any]]:
    """Each function of each queue over the farm, busiest first."""
    return [_row_json(row) for row in function_rows((s.at, s.functions) for s in snapshots)]


def history_json(snapshots: Sequence[Snapshot]) -> list[dict[str, Any]]:
    """The supervisors' per-minute totals added up, oldest first."""
    return [
        msgspec.structs.asdict(minute) for minute in merged_history(s.history for s in snapshots)
    ]


def function_lines(snapshots: Sequence[Snapshot]) -> list[str]:
    """The busiest functions as a table, then the last hour in one line; nothing when
    no supervisor reported any."""
    rows = function_rows((s.at, s.functions) for s in snapshots)
    lines: list[str] = []
    if rows:
        cells = [_HEADER, *(_cells(row) for row in rows[:_LISTED])]
        widths = [max(len(line[n]) for line in cells) for n in range(len(_HEADER))]
        lines += [
            "  ".join(
                cell.rjust(widths[n]) if n in _RIGHT_ALIGNED and k else cell.ljust(widths[n])
                for n, cell in enumerate(line)
            ).rstrip()
            for k, line in enumerate(cells)
        ]
        if len(rows) > _LISTED:
            lines.append(f"... and {len(rows) - _LISTED} more (--json lists them all)")
        lines.append("(over the last 5 minutes; FAILED: share of runs that failed)")
    history = merged_history(s.history for s in snapshots)
    if history:
        lines.append(_hour_line(history))
    return lines


def _cells(row: FunctionRow) -> tuple[str, ...]:
    ratio = row.failure_ratio
    return (
        row.function,
        row.queue,
        "-" if row.runs_per_minute is None else f"{row.runs_per_minute:,.1f}",
        "-" if ratio is None else f"{ratio:.0%}",
        str(row.tally.dead_lettered),
        str(row.tally.hard_timeouts),
        _runtime(row.p50_s),
        _runtime(row.p95_s),
    )


def _hour_line(history: list[MinuteTotals]) -> str:
    def total(field: str) -> int:
        return sum(getattr(minute, field) for minute in history)

    busiest = max(history, key=lambda minute: minute.succeeded)
    since = time.strftime("%H:%MZ", time.gmtime(history[0].at))
    return (
        f"last hour: {total('succeeded'):,} succeeded, {total('retried'):,} retried, "
        f"{total('dead_lettered'):,} dead-lettered, {total('cancelled'):,} cancelled, "
        f"{total('hard_timeouts'):,} hard timeouts (since {since}; busiest minute "
        f"{busiest.succeeded:,} succeeded at {time.strftime('%H:%MZ', time.gmtime(busiest.at))})"
    )


def _row_json(row: FunctionRow) -> dict[str, Any]:
    tally = row.tally
    return {
        "function": row.function,
        "queue": row.queue,
        "succeeded": tally.succeeded,
        "retried": tally.retried,
        "dead_lettered": tally.dead_lettered,
        "cancelled": tally.cancelled,
        "hard_timeouts": tally.hard_timeouts,
        "runs_per_minute": row.runs_per_minute,
        "failure_ratio": row.failure_ratio,
        "p50_s": row.p50_s,
        "p95_s": row.p95_s,
        "window_s": row.window_s,
        "supervisors": row.supervisors,
    }


def _runtime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f}µs"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m"
