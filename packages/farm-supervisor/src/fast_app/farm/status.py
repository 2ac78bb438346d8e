"""``fast-app status``: the whole farm, from the snapshots supervisors publish."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.settings import QueueSettings

__all__ = ["collect_snapshots", "render_status"]


async def collect_snapshots(settings: QueueSettings, *, wait_s: float) -> list[dict[str, Any]]:
    """Listen to the events exchange for ``wait_s``; the latest snapshot of each supervisor."""
    import aio_pika

    topology = Topology.from_settings(settings)
    latest: dict[str, dict[str, Any]] = {}
    connection = await asyncio.wait_for(
        aio_pika.connect(
            settings.rabbitmq_url.get_secret_value(),
            client_properties={"connection_name": "fast-app status"},
        ),
        settings.connect_timeout_s,
    )
    try:
        channel = await connection.channel()
        await topology.declare(channel)
        listener = await channel.declare_queue(exclusive=True, auto_delete=True)
        await listener.bind(topology.events_exchange)

        async def on_snapshot(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            try:
                snapshot = json.loads(message.body)
            except ValueError:
                return
            if isinstance(snapshot, dict) and snapshot.get("type") == "snapshot":
                latest[str(snapshot.get("supervisor_id"))] = snapshot

        await listener.consume(on_snapshot, no_ack=True)
        await asyncio.sleep(wait_s)
    finally:
        await connection.close()
    return sorted(latest.values(), key=lambda snapshot: str(snapshot.get("supervisor_id")))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _worker_line(worker: dict[str, Any]) -> str:
    counters = worker.get("counters", {})
    rss_mb = (worker.get("rss_bytes") or 0) / 1e6
    in_flight = len(worker.get("in_flight", []))
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
        return f"no supervisor is serving {queue_name} (no snapshot heard)"
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
    return "\n".join(lines)
