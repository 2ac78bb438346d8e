"""Made-up farms: snapshots and dead letters as a real farm sends them, deterministic.

For the dashboard's snapshot tests and its responsiveness benchmark, and to look at the
dashboard without a farm: ``FarmApp(StaticFarm(sample_history(time.time()))).run()``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from fast_app.farm.dead_letters import DeadLetter
from fast_app.farm.histograms import RuntimeHistogram

__all__ = ["sample_dead_letters", "sample_history", "sample_snapshot"]

_FUNCTIONS = ("app.reports.render", "app.mail.send_digest", "app.billing.charge", "app.sync.pull")
_TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/billing.py", line 41, in charge
    receipt = await gateway.capture(order_id, amount)
  File "/srv/app/gateway.py", line 88, in capture
    raise GatewayError(f"card declined for order {order_id}")
app.gateway.GatewayError: card declined for order 1042
"""


def sample_snapshot(
    at: float,
    *,
    supervisor_id: str = "web-1-4242",
    workers: int = 3,
    jobs_per_worker: int = 2,
    tick: int = 0,
    ready: int = 120,
    stale_worker: int | None = None,
    events: int = 6,
    started_at: float | None = None,
    queues: Sequence[str] = ("jobs",),
    stale_queue: str | None = None,
    waiting: Sequence[int] = (),
) -> dict[str, Any]:
    """One supervisor's snapshot at Unix time ``at``.

    Args:
        at: the snapshot's time.
        supervisor_id: its supervisor.
        workers: how many workers it has.
        jobs_per_worker: jobs each one has in flight.
        tick: varies counters, rates and job ids from one snapshot to the next.
        ready: jobs waiting in the queue.
        stale_worker: index of a worker whose heartbeat is late.
        events: lifecycle events it carries: the latest of one every 5 s since start.
        started_at: when its supervisor started (default an hour before ``at``).
        queues: the queues it serves, its workers shared among them in turn. The first
            has ``ready`` jobs waiting and a pool of 1 to 8 workers (1 to 4 when there
            are several); each other one a pool of 0 to 8, a burst of up to 300 jobs
            around tick 40, and no delayed count read yet.
        stale_queue: a queue whose broker figures were last read 30 s before ``at``.
        waiting: deliveries each worker holds waiting for a slot, by index (those past
            the end: none). With any, each worker's slots are its jobs in flight
            (``FARM_PREFETCH`` above ``FARM_CONCURRENCY``: only a full worker holds
            more), and the snapshot lists up to 40 of them as a supervisor does: each
            worker's first in line first.
    """
    if started_at is None:
        started_at = at - 3600
    last_event = int((at - started_at) // 5)
    worker_entries = []
    for index in range(workers):
        worker_id = f"{supervisor_id}-w{index + 1}"
        in_flight = [
            _running_job(at, supervisor_id, index, slot, tick) for slot in range(jobs_per_worker)
        ]
        worker_entries.append(
            {
                "worker_id": worker_id,
                "queue": queues[index % len(queues)],
                "pid": 5000 + index,
                "state": "busy" if in_flight else "idle",
                "in_flight": in_flight,
                "in_flight_count": len(in_flight),
                "counters": {
                    "succeeded": 1000 * (index + 1) + 17 * tick,
                    "failed": index * 3,
                    "retried": index * 2,
                    "dead_lettered": index,
                    "soft_timeouts": 0,
                    "hard_timeouts": 0,
                    "invalid": 0,
                },
                "rss_bytes": 48_000_000 + 1_000_000 * index,
                "uptime_s": 3000.0 - 60 * index,
                "heartbeat_age_s": 9.0 if index == stale_worker else 0.3,
                "rate": 40.0 + index,
            }
        )
    completion = sum(40.0 + index for index in range(workers))
    queue_entries = [
        _queue_entry(
            at,
            name,
            position,
            several=len(queues) > 1,
            workers=[e for e in worker_entries if e["queue"] == name],
            ready=ready,
            tick=tick,
            stale=name == stale_queue,
        )
        for position, name in enumerate(queues)
    ]
    return {
        "type": "snapshot",
        "supervisor_id": supervisor_id,
        "host": supervisor_id.rsplit("-", 1)[0],
        "pid": 4242,
        "at": at,
        "started_at": started_at,
        "settings": {
            "queue": queues[0] if len(queues) == 1 else "jobs",
            "min_workers": sum(entry["min_workers"] for entry in queue_entries),
            "max_workers": 8,
            "concurrency": jobs_per_worker if any(waiting) else 16,
            "heartbeat_interval_s": 1.0,
        },
        "desired_workers": workers,
        "paused": False,
        "stopping": False,
        "stopped": False,
        "workers": worker_entries,
        "queue": {
            **{
                key: _total([entry["figures"][key] for entry in queue_entries])
                for key in ("ready", "unacked", "consumers", "dead", "delayed")
            },
            "next_due_within_s": 25.6,
        },
        "completion_rate": completion,
        "enqueue_rate": sum(entry["enqueue_rate"] for entry in queue_entries),
        "decisions": [
            {
                "at": at - 600 + 120 * number,
                "from": number + 1,
                "to": number + 2,
                "reason": (
                    f"scale up {number + 1}→{number + 2}: {ready * 10} ready, 16 unacked, "
                    f"{number + 1} workers: need 4 to drain in 5s (step 2)"
                ),
            }
            for number in range(min(3, workers))
        ],
        "failures": [],
        "recent_jobs": {
            "succeeded": [_ended_job(at, supervisor_id, tick, 0, "succeeded")],
            "failed": [_ended_job(at, supervisor_id, tick, 1, "dead_lettered")],
        },
        "events": [
            _event(supervisor_id, number, started_at + 5 * number, workers)
            for number in range(max(1, last_event - events + 1), last_event + 1)
        ],
        "queues": queue_entries,
        "functions": _function_figures(at, started_at, queues),
        "history": _minute_history(at, started_at, workers),
        "waiting": {
            entry["worker_id"]: count
            for entry, count in zip(worker_entries, waiting, strict=False)
            if count
        },
        "waiting_jobs": _waiting_jobs(worker_entries, waiting),
    }


_WAITING_LISTED = 40  # as a supervisor's snapshot lists them


def _waiting_jobs(
    worker_entries: list[dict[str, Any]], waiting: Sequence[int]
) -> list[dict[str, Any]]:
    """The waiting deliveries a snapshot lists: each worker's first, then each one's
    second..., 40 at most (the same ones from one snapshot to the next)."""
    listed: list[dict[str, Any]] = []
    for position in range(max(waiting, default=0)):
        for index, (entry, count) in enumerate(zip(worker_entries, waiting, strict=False)):
            if position < count and len(listed) < _WAITING_LISTED:
                listed.append(
                    {
                        "id": f"w{index:02d}{position:03d}" + "ef" * 12,
                        "function": _FUNCTIONS[(index + position) % len(_FUNCTIONS)],
                        "worker_id": entry["worker_id"],
                    }
                )
    return listed


# (function, runs a minute, share failed, median runtime s, spread)
_FUNCTION_LOADS = (
    ("app.mail.send_welcome_email", 1200, 0.0, 0.04, 1.6),
    ("app.billing.charge_order", 300, 0.08, 0.35, 2.5),
    ("app.reports.build_monthly_report", 6, 0.0, 42.0, 1.3),
    ("app.uploads.resize_image", 90, 0.5, 1.2, 2.0),
)


def _function_figures(at: float, started_at: float, queues: Sequence[str]) -> list[dict[str, Any]]:
    """Each sample function's last five minutes (one dead letter, one hard timeout)."""
    since = max(started_at, at - at % 60 - 240)
    minutes = (at - since) / 60
    figures = []
    for number, load in enumerate(_FUNCTION_LOADS):
        function, per_minute, failed_share, median_s, spread = load
        runs = int(per_minute * minutes)
        failed = int(runs * failed_share)
        buckets = RuntimeHistogram()
        for step in range(40):  # a log-normal-ish spread around the median
            seconds = median_s * spread ** ((step - 20) / 10)
            for _ in range(max(1, runs // 40 if abs(step - 20) < 10 else runs // 200)):
                buckets.add(seconds)
        figures.append(
            {
                "function": function,
                "queue": queues[number % len(queues)],
                "since": since,
                "succeeded": runs - failed,
                "retried": max(0, failed - 1),
                "dead_lettered": min(1, failed),
                "cancelled": 0,
                "hard_timeouts": 1 if function.endswith("resize_image") else 0,
                "runtimes": buckets.pairs(),
            }
        )
    return figures


def _minute_history(at: float, started_at: float, workers: int) -> list[list[float]]:
    """An hour of minutes: a steady load, a burst half an hour ago, failures in a few."""
    current = at - at % 60
    first = max(started_at - started_at % 60, current - 3600)
    history = []
    for minute, start in enumerate(range(int(first), int(current) + 1, 60)):
        succeeded = 600 * workers + (4000 if 28 <= minute <= 31 else 0) + 37 * (minute % 7)
        failed = 12 if minute % 13 == 5 else 0
        history.append([float(start), succeeded, failed, 1 if failed else 0, 0, 0])
    return history


def _queue_entry(
    at: float,
    name: str,
    position: int,
    *,
    several: bool,
    workers: list[dict[str, Any]],
    ready: int,
    tick: int,
    stale: bool,
) -> dict[str, Any]:
    """A ``QueueEntry``: the first queue steady, the others with a burst around tick 40."""
    first = position == 0
    if not first:
        ready = max(12, 300 - 15 * abs(tick - 40))
    unacked = sum(worker["in_flight_count"] for worker in workers)
    completion = sum(worker["rate"] for worker in workers)
    started = bool(workers)
    return {
        "name": name,
        "min_workers": 1 if first else 0,
        "max_workers": 4 if first and several else 8,
        "desired_workers": len(workers),
        "workers": len(workers),
        "figures": {
            "ready": ready,
            "unacked": unacked,
            "consumers": len(workers),
            "dead": 3 if first else 1,
            "delayed": 4 if first else None,
            "next_due_within_s": 25.6 if first else None,
        },
        "completion_rate": completion,
        "enqueue_rate": completion + 15 + 10 * (tick % 7) if first else completion,
        "wait_p50_s": (0.2 if first else 41.0) if started else None,
        "wait_max_s": (1.1 if first else 150.0) if started else None,
        "waits_counted": (120 if first else 30) if started else 0,
        "clear_s": (ready + unacked) / completion if completion else None,
        "read_at": at - (30.0 if stale else 0.4),
    }


def _total(values: list[int | None]) -> int | None:
    return None if None in values else sum(value for value in values if value is not None)


def _event(supervisor_id: str, number: int, at: float, workers: int) -> dict[str, Any]:
    worker_id = f"{supervisor_id}-w{number % max(1, workers) + 1}"
    killed = number % 3 == 2
    return {
        "seq": number,
        "at": at,
        "kind": "worker_killed" if killed else "worker_started",
        "level": "warning" if killed else "info",
        "message": (
            f"worker {worker_id} killed: hung (no heartbeat for 5.1s)"
            if killed
            else f"worker {worker_id} started (pid {5000 + number})"
        ),
    }


def _running_job(
    at: float, supervisor_id: str, worker: int, slot: int, tick: int
) -> dict[str, Any]:
    started = at - 2.0 - 3.5 * slot - worker
    return {
        "id": f"{worker:02d}{slot:02d}{tick:04d}" + "ab" * 12,
        "function": _FUNCTIONS[(worker + slot) % len(_FUNCTIONS)],
        "attempt": 1 + slot % 2,
        "started_at": started,
        "soft_deadline": started + 10,
        "hard_deadline": started + 20 if slot % 2 == 0 else None,
        "still_running": False,
        "args": f"({1000 + worker}, 'report-{slot}', fmt='pdf')",
        "context_keys": ["request_id", "tenant"],
        "traceparent": f"00-{'0' * 31}{worker}-{'0' * 15}{slot}-01",
    }


def _ended_job(
    at: float, supervisor_id: str, tick: int, number: int, outcome: str
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": f"e{tick:04d}{number:02d}" + "cd" * 12,
        "function": _FUNCTIONS[(tick + number) % len(_FUNCTIONS)],
        "attempt": 1 + number,
        "outcome": outcome,
        "ended_at": at - 1.5 - number,
        "duration_s": 0.042 + number,
        "args": "(1042, amount=19.99)",
        "context_keys": ["request_id", "tenant", "user_id"],
        "worker_id": f"{supervisor_id}-w1",
    }
    if outcome != "succeeded":
        job["error"] = "app.gateway.GatewayError: card declined for order 1042"
        job["traceback"] = _TRACEBACK
    return job


def sample_history(now: float, *, seconds: int = 90, **options: Any) -> list[dict[str, Any]]:
    """One snapshot a second for ``seconds`` up to ``now`` (rates plotted over them)."""
    options.setdefault("started_at", now - 3600)
    return [
        sample_snapshot(now - seconds + 1 + second, tick=second, **options)
        for second in range(seconds)
    ]


def sample_dead_letters(now: float, count: int = 3) -> list[DeadLetter]:
    """Dead letters of a failing job and of a timeout, oldest first."""
    letters = []
    for number in range(count):
        failed = number % 2 == 0
        letters.append(
            DeadLetter(
                job_id=f"d{number:03d}" + "ef" * 14,
                function=_FUNCTIONS[number % len(_FUNCTIONS)],
                reason="failed" if failed else "soft_timeout",
                error_type="app.gateway.GatewayError" if failed else "soft_timeout",
                error="card declined for order 1042" if failed else "ran past its 30s timeout",
                traceback=_TRACEBACK if failed else None,
                attempts=4,
                worker=f"web-1-4242-w{number + 1}",
                failed_at=dt.datetime.fromtimestamp(now - 600 + 60 * number, dt.UTC),
                body=json.dumps({"id": number}).encode(),
                args=[1042, {"items": list(range(40))}],
                kwargs={"amount": 19.99, "currency": "EUR"},
                context={"request_id": f"req-{number}", "tenant": "acme"},
            )
        )
    return letters
