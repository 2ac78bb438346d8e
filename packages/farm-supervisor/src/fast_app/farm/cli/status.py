"""``fast-app status``: the whole farm, from the snapshots supervisors publish."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from fast_app.farm.cli._common import EXIT_OK, EXIT_USAGE, broker_unreachable, queue_settings
from fast_app.farm.printable import printable

__all__ = ["add_status_parser", "render_status", "run_status"]


def add_status_parser(commands: Any) -> None:
    """Add ``status`` to the ``fast-app`` parser (run it with ``run_status``)."""
    status = commands.add_parser("status", help="print the state of the whole farm")
    status.add_argument("--json", action="store_true", help="print the snapshots as JSON")
    status.add_argument("--queue", dest="queue_name", help="jobs queue (QUEUE_NAME)")
    status.add_argument("--wait", type=float, default=2.5, help="seconds to listen (default 2.5)")


def run_status(options: argparse.Namespace) -> int:
    """Run the ``status`` command parsed into ``options``; return the exit code."""
    # Imported here: the other commands (a worker process above all) need no listener.
    from fast_app.farm.listener import collect_snapshots

    queue = queue_settings("status", options.queue_name)
    if queue is None:
        return EXIT_USAGE
    try:
        snapshots = asyncio.run(collect_snapshots(queue, wait_s=options.wait))
    except (OSError, TimeoutError, ConnectionError) as error:
        return broker_unreachable("status", queue, error)
    if options.json:
        print(json.dumps(snapshots, indent=2, default=str))
    else:
        print(render_status(queue.name, snapshots))
    return EXIT_OK


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _worker_line(worker: dict[str, Any]) -> str:
    counters = worker.get("counters", {})
    rss_mb = (worker.get("rss_bytes") or 0) / 1e6
    in_flight = worker.get("in_flight_count", len(worker.get("in_flight", [])))
    heartbeat_age = float(worker.get("heartbeat_age_s", 0))
    return (
        f"  {worker.get('worker_id'):<28} pid {worker.get('pid'):<7} {worker.get('state'):<9}"
        f" {in_flight:>3} in flight  {counters.get('succeeded', 0)} ok"
        f" / {counters.get('failed', 0)} failed  {rss_mb:.0f} MB"
        f"  heartbeat {heartbeat_age:.1f}s ago"
    )


def render_status(queue_name: str, snapshots: list[dict[str, Any]]) -> str:
    """The farm as text, for people."""
    if not snapshots:
        return printable(f"no supervisor is serving {queue_name} (no snapshot heard)")
    lines = []
    first_queue = snapshots[0].get("queue", {})
    lines.append(
        f"queue {queue_name}: {first_queue.get('ready')} ready, {first_queue.get('delayed')} "
        f"delayed, {first_queue.get('dead')} dead, {first_queue.get('consumers')} consumers"
    )
    for snapshot in snapshots:
        settings = snapshot.get("settings", {})
        workers = snapshot.get("workers", [])
        uptime = time.time() - float(snapshot.get("started_at", time.time()))
        lines.append(
            f"supervisor {snapshot.get('supervisor_id')} on {snapshot.get('host')}: "
            f"{len(workers)} workers (min {settings.get('min_workers')}, max "
            f"{settings.get('max_workers')}), up {_age(uptime)}, "
            f"{float(snapshot.get('completion_rate') or 0):.1f} jobs/s"
        )
        for worker in workers:
            lines.append(_worker_line(worker))
        for decision in snapshot.get("decisions", [])[-3:]:
            lines.append(f"  scaling: {decision.get('reason')}")
        refused = snapshot.get("refused") or {}
        if refused:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(refused.items()))
            lines.append(f"  messages refused since it started: {counts}")
    # Every line escaped: whatever a snapshot held, it cannot drive the terminal.
    return "\n".join(printable(line) for line in lines)
