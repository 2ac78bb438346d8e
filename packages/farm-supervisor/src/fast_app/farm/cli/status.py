"""``fast-app status``: the whole farm, queue by queue, from the snapshots supervisors
publish and, for the queues none of them serves, from the broker itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import msgspec

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.broker_queues import known_queues
from fast_app.farm.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    broker_unreachable,
    load_settings,
)
from fast_app.farm.cli._farm_status import FarmStatus, QueueRow, farm_status
from fast_app.farm.cli._function_table import function_lines, functions_json, history_json
from fast_app.farm.messages import Snapshot
from fast_app.farm.messages.snapshots import WorkerEntry
from fast_app.farm.printable import printable

__all__ = ["add_status_parser", "render_status", "run_status", "status_json"]

_UNKNOWN = "?"


def add_status_parser(commands: Any) -> None:
    """Add ``status`` to the ``fast-app`` parser (run it with ``run_status``)."""
    status = commands.add_parser(
        "status",
        help="print the state of the whole farm, queue by queue",
        description=(
            "Listen to the supervisors' snapshots, then print one row per queue (ready, "
            "unacked, delayed and dead jobs, consumers, workers, queue wait, time to clear; "
            "? where unknown; when workers hold deliveries waiting for a slot, those too) "
            "and each supervisor's workers. The queues the farm knows "
            "(QUEUE_NAME, FARM_QUEUES, QUEUE_ROUTES' targets) that no supervisor heard "
            "serves are read from the broker itself. Exit codes: 0 healthy; 1 no "
            "supervisor heard, or a queue that no supervisor serves holds ready jobs and "
            "has no consumer; 2 bad settings or the broker cannot be reached."
        ),
    )
    status.add_argument(
        "--json", action="store_true", help="print the queues and snapshots as JSON"
    )
    status.add_argument(
        "--queue",
        dest="queue_name",
        metavar="NAME",
        help="the farm's default queue, whose exchanges carry the snapshots (QUEUE_NAME)",
    )
    status.add_argument("--wait", type=float, default=2.5, help="seconds to listen (default 2.5)")


def run_status(options: argparse.Namespace) -> int:
    """Run the ``status`` command parsed into ``options``; return the exit code.

    0 when the farm is healthy; 1 when no supervisor was heard, or a queue that no
    supervisor serves holds ready jobs and has no consumer; 2 for bad settings, and when
    the broker cannot be reached.
    """
    loaded = load_settings("status", options.queue_name, {})
    if loaded is None:
        return EXIT_USAGE
    farm, queue = loaded
    try:
        status = asyncio.run(_survey(queue, known_queues(queue, farm), options.wait))
    except (OSError, TimeoutError, ConnectionError) as error:
        return broker_unreachable("status", queue, error)
    if options.json:
        print(json.dumps(status_json(status), indent=2, default=str))
    else:
        print(render_status(status))
    return EXIT_OK if status.healthy else EXIT_FAILED


async def _survey(queue: QueueSettings, known: tuple[str, ...], wait_s: float) -> FarmStatus:
    """Listen for ``wait_s``, then read the known queues that no supervisor heard serves."""
    # Imported here: the other commands (a worker process above all) need neither.
    from fast_app.farm.broker_queues import read_queues
    from fast_app.farm.listener import collect_snapshots

    heard = await collect_snapshots(queue, wait_s=wait_s)
    snapshots = [msgspec.convert(snapshot, Snapshot) for snapshot in heard]
    served = {entry.name for snapshot in snapshots for entry in snapshot.queues}
    served |= {snapshot.settings.queue for snapshot in snapshots if not snapshot.queues}
    unserved = [name for name in known if name not in served]
    readings = await read_queues(queue, unserved) if unserved else []
    return farm_status(queue.name, wait_s, snapshots, readings, time.time())


def status_json(status: FarmStatus) -> dict[str, Any]:
    """The farm as JSON-ready data, for scripts: the verdict, one object per queue (every
    field of ``QueueRow``, ``null`` where unknown; ``waiting`` always, 0 when none wait),
    the snapshots heard (with their ``waiting`` counts and ``waiting_jobs``), each
    function's figures (``functions``) and the per-minute totals of the last hour
    (``history``)."""
    return {
        "queue": status.queue,
        "healthy": status.healthy,
        "problems": list(status.problems),
        "queues": [_row_json(row) for row in status.queues],
        "supervisors": [msgspec.to_builtins(snapshot) for snapshot in status.snapshots],
        "functions": functions_json(status.snapshots),
        "history": history_json(status.snapshots),
    }


def _row_json(row: QueueRow) -> dict[str, Any]:
    data: dict[str, Any] = {
        name: getattr(row, name) for name in QueueRow.__dataclass_fields__ if name != "supervisors"
    }
    data["supervisors"] = list(row.supervisors)
    data["source"] = "supervisors" if row.supervisors else "broker"
    data["unconsumed_backlog"] = row.unconsumed_backlog
    return data


def render_status(status: FarmStatus) -> str:
    """The farm as text, for people: what is wrong first, the queues, the busiest
    functions and the last hour, then each supervisor and its workers."""
    lines = list(status.problems)
    lines += _queue_table(status.queues, heard=bool(status.snapshots))
    lines += function_lines(status.snapshots)
    now = time.time()
    for snapshot in status.snapshots:
        lines += _supervisor_lines(snapshot, now)
    # Every line escaped: whatever a snapshot held, it cannot drive the terminal.
    return "\n".join(printable(line) for line in lines)


_COLUMNS = (
    "QUEUE",
    "READY",
    "UNACKED",
    "DELAYED",
    "DEAD",
    "CONSUMERS",
    "WORKERS",
    "WAIT p50/max (starts, 1m)",
    "CLEAR",
    "AGE",
    "",
)
_RIGHT_ALIGNED = {1, 2, 3, 4, 5}
#: Shown after UNACKED only when some worker holds deliveries waiting for a slot: a farm
#: without prefetch above concurrency keeps its narrower table, with no column of zeros.
_WAITING_COLUMN = "WAITING"
_WAITING_AT = 3
#: Marks a median estimated from several supervisors' medians (``merge_waits``).
_ESTIMATED = "≈"


def _queue_table(rows: tuple[QueueRow, ...], *, heard: bool) -> list[str]:
    if not rows:
        return []
    columns = list(_COLUMNS)
    body = [_queue_cells(row, heard=heard) for row in rows]
    right_aligned = _RIGHT_ALIGNED
    # Shown where some wait, or where a supervisor serving the queue cannot say.
    waiting = any(row.waiting or row.waiting_unreported for row in rows)
    if waiting:
        columns.insert(_WAITING_AT, _WAITING_COLUMN)
        for row, row_cells in zip(rows, body, strict=True):
            row_cells.insert(_WAITING_AT, _count(row.waiting) if row.exists else "-")
        right_aligned = {index + (index >= _WAITING_AT) for index in _RIGHT_ALIGNED}
        right_aligned.add(_WAITING_AT)
    table = [columns, *body]
    widths = [max(len(cells[index]) for cells in table) for index in range(len(columns))]
    lines = []
    for cells in table:
        shown = [
            cell.rjust(width) if index in right_aligned else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(shown).rstrip())
    if any(row.wait_p50_approximate for row in rows):
        lines.append(
            f"{_ESTIMATED} median wait estimated: the mean of several supervisors' medians, "
            "weighted by their starts"
        )
    if waiting:
        lines.append(
            "WAITING: held in workers for a free slot (FARM_PREFETCH > FARM_CONCURRENCY), "
            "not started: in neither READY nor UNACKED"
        )
        if any(row.waiting_unreported for row in rows):
            lines.append("WAITING ?: a supervisor serving the queue is too old to report them")
    return lines


def _queue_cells(row: QueueRow, *, heard: bool) -> list[str]:
    age = _UNKNOWN if row.age_s is None else _age(row.age_s)
    if not row.exists:
        return [row.name, *["-"] * 8, age, "absent: the broker has no such queue"]
    workers = _UNKNOWN
    if row.workers is not None:
        workers = f"{row.workers}/{_count(row.desired_workers)}"
        workers += f" ({_count(row.min_workers)}..{_count(row.max_workers)})"
    wait = _UNKNOWN
    if row.wait_p50_s is not None:
        estimated = _ESTIMATED if row.wait_p50_approximate else ""
        wait = f"{estimated}{_duration(row.wait_p50_s)}/{_duration(row.wait_max_s)}"
    if row.waits_counted is not None:
        wait += f" ({row.waits_counted:,})"
    if not row.waits_counted and row.oldest_wait_at_least_s is not None:
        wait = f"oldest ≥{_duration(row.oldest_wait_at_least_s)}"
    notes = []
    if row.stale:
        notes.append("STALE")
    if row.unconsumed_backlog:
        unconsumed_for = row.oldest_wait_at_least_s
        notes.append(
            "NO CONSUMER" if unconsumed_for is None else f"NO CONSUMER for ≥{_age(unconsumed_for)}"
        )
    if row.delayed and row.next_due_within_s is not None:
        notes.append(f"next delayed due within {_duration(row.next_due_within_s)}")
    if not row.supervisors:
        served_by = "no supervisor serves it" if heard else "no supervisor heard"
        notes.append(f"{served_by}: read from the broker")
    return [
        row.name,
        _count(row.ready),
        _count(row.unacked),
        _count(row.delayed),
        _count(row.dead),
        _count(row.consumers),
        workers,
        wait,
        _clear(row.clear_s),
        age,
        ", ".join(notes),
    ]


def _supervisor_lines(snapshot: Snapshot, now: float) -> list[str]:
    settings = snapshot.settings
    served = ", ".join(entry.name for entry in snapshot.queues) or settings.queue
    if snapshot.waiting is None:
        held = ", deliveries waiting in them for a slot: not reported (an older supervisor)"
    else:
        waiting = sum(snapshot.waiting.values())
        deliveries = "delivery" if waiting == 1 else "deliveries"
        held = f", {waiting:,} {deliveries} waiting in them for a slot" if waiting else ""
    lines = [
        f"supervisor {snapshot.supervisor_id} on {snapshot.host}: serving {served}; "
        f"{len(snapshot.workers)} workers (min {settings.min_workers}, max "
        f"{settings.max_workers}){held}, up {_age(max(0.0, now - snapshot.started_at))}, "
        f"{snapshot.completion_rate:.1f} jobs/s, heard {_age(max(0.0, now - snapshot.at))} ago"
    ]
    counted = snapshot.waiting
    lines += [
        _worker_line(worker, None if counted is None else counted.get(worker.worker_id, 0))
        for worker in snapshot.workers
    ]
    lines += [f"  scaling: {decision.reason}" for decision in snapshot.decisions[-3:]]
    if snapshot.refused:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(snapshot.refused.items()))
        lines.append(f"  messages refused since it started: {counts}")
    return lines


def _worker_line(worker: WorkerEntry, waiting: int | None) -> str:
    """``waiting``: the deliveries it holds waiting for a slot (not among its jobs in
    flight); ``None``: not reported (its supervisor's line says so)."""
    rss_mb = (worker.rss_bytes or 0) / 1e6
    queue = f"  on {worker.queue}" if worker.queue else ""
    held = f", {waiting:,} waiting" if waiting else ""
    return (
        f"  {worker.worker_id:<28} pid {worker.pid:<7} {worker.state:<9}"
        f" {worker.in_flight_count:>3} in flight{held}  {worker.counters.succeeded} ok"
        f" / {worker.counters.failed} failed  {rss_mb:.0f} MB"
        f"  heartbeat {worker.heartbeat_age_s:.1f}s ago{queue}"
    )


def _count(value: int | None) -> str:
    return _UNKNOWN if value is None else f"{value:,}"


def _clear(seconds: float | None) -> str:
    if seconds is None:
        return _UNKNOWN
    return "0s" if seconds == 0 else f"~{_duration(seconds)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return _UNKNOWN
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return _age(seconds)


def _age(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
