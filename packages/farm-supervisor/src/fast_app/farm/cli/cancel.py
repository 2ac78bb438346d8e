"""``fast-app cancel JOB``: cancel one job, running or waiting, by its id or a unique prefix.

The job is looked up in what the supervisors' snapshots list: the jobs in flight, and
the deliveries waiting inside workers for a slot (``FARM_PREFETCH`` above
``FARM_CONCURRENCY``). The ``cancel_job`` command goes to the supervisor whose worker
holds it (the snapshot says which), which forwards it to that worker. The worker cancels
the job's task, or settles a waiting job without running it, and dead-letters its
delivery with reason ``cancelled``: acknowledged, never redelivered, never retried, and
``fast-app dlq requeue`` runs it again. A plain function runs in a thread, which cannot
be stopped: cancelling it while it runs is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    broker_unreachable,
    queue_settings,
)
from fast_app.farm.listener import FarmListener
from fast_app.farm.printable import printable

__all__ = [
    "MIN_PREFIX",
    "ListedJob",
    "add_cancel_parser",
    "cancel_command",
    "find_jobs",
    "run_cancel",
]

#: The shortest id prefix accepted (shorter ones match too many jobs to be safe).
MIN_PREFIX = 6
_REFUSED = "cancel_refused"
_FORWARDED = "cancel_forwarded"
_NOT_FOUND = "cancel_not_found"


@dataclass(frozen=True, slots=True)
class ListedJob:
    """A job a snapshot lists, with who holds it.

    Attributes:
        waiting: it waits inside its worker for a slot (not started when the snapshot
            was taken); else it is in flight.
    """

    job_id: str
    function: str
    supervisor_id: str
    worker_id: str
    in_thread: bool
    waiting: bool = False


def find_jobs(prefix: str, snapshots: list[dict[str, Any]]) -> list[ListedJob]:
    """The jobs in flight or waiting in ``snapshots`` whose id is ``prefix`` or starts
    with it.

    An exact match wins over longer ids that share it as a prefix. A job listed both in
    flight and waiting (by snapshots of different moments) counts as in flight.
    """
    found: dict[str, ListedJob] = {}
    for snapshot in snapshots:
        supervisor_id = str(snapshot.get("supervisor_id", "?"))
        for job in snapshot.get("waiting_jobs", []):
            job_id = str(job.get("id", ""))
            if job_id.startswith(prefix):
                found.setdefault(
                    job_id,
                    ListedJob(
                        job_id,
                        str(job.get("function") or "?"),
                        supervisor_id,
                        str(job.get("worker_id", "?")),
                        False,
                        waiting=True,
                    ),
                )
        for worker in snapshot.get("workers", []):
            for job in worker.get("in_flight", []):
                job_id = str(job.get("id", ""))
                if job_id.startswith(prefix):
                    found[job_id] = ListedJob(
                        job_id,
                        str(job.get("function", "?")),
                        supervisor_id,
                        str(worker.get("worker_id", "?")),
                        bool(job.get("in_thread", False)),
                    )
    if prefix in found:
        return [found[prefix]]
    return sorted(found.values(), key=lambda job: job.job_id)


def cancel_command(job_id: str) -> dict[str, Any]:
    """The ``cancel_job`` command's fields for ``job_id`` (its full id)."""
    return {"command": "cancel_job", "job_id": job_id}


def add_cancel_parser(commands: Any) -> None:
    """Add ``cancel`` to the ``fast-app`` parser (run it with ``run_cancel``)."""
    cancel = commands.add_parser(
        "cancel",
        help="cancel one running job (async jobs only) or one waiting for a worker's slot",
        description=(
            "Cancel a running job, or one waiting inside a worker for a free slot "
            "(FARM_PREFETCH above FARM_CONCURRENCY), given its id or a unique prefix of it "
            f"(at least {MIN_PREFIX} characters), as the supervisors' snapshots list it. Its "
            "worker cancels the job's task, or drops a waiting job before it starts, and "
            "dead-letters it with reason 'cancelled': never redelivered nor retried; "
            "'fast-app dlq requeue ID' runs it again. A plain (non-async) function runs in a "
            "thread, which cannot be stopped: refused once it runs. "
            "Exit codes: 0 the job is cancelled (or its worker was told to); 1 no running "
            "or waiting job matches, the prefix is ambiguous, the job runs in a thread, or "
            "no supervisor confirmed in time; 2 bad settings or the broker cannot be reached."
        ),
    )
    cancel.add_argument("job", metavar="JOB", help="the job's id, or a unique prefix of it")
    cancel.add_argument(
        "--queue",
        dest="queue_name",
        metavar="NAME",
        help="the farm's default queue, whose exchanges carry the snapshots (QUEUE_NAME)",
    )
    cancel.add_argument(
        "--wait",
        type=float,
        default=2.5,
        help="seconds to listen to snapshots for the running and waiting jobs (default 2.5)",
    )
    cancel.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to wait for the job to end as cancelled (default 15)",
    )


def run_cancel(options: argparse.Namespace) -> int:
    """Run the ``cancel`` command parsed into ``options``; return the exit code."""
    prefix = str(options.job)
    if len(prefix) < MIN_PREFIX:
        print(
            f"fast-app cancel: {prefix!r} is too short: give at least {MIN_PREFIX} "
            "characters of the job's id",
            file=sys.stderr,
        )
        return EXIT_USAGE
    queue = queue_settings("cancel", options.queue_name)
    if queue is None:
        return EXIT_USAGE
    try:
        return asyncio.run(_cancel(queue, prefix, options.wait, options.timeout))
    except (OSError, TimeoutError, ConnectionError) as error:
        return broker_unreachable("cancel", queue, error)


class _Snapshots:
    """The latest snapshot of each supervisor, and the events and ends heard since."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.ended: list[dict[str, Any]] = []

    def keep(self, snapshot: dict[str, Any]) -> None:
        held = self.latest.get(snapshot["supervisor_id"])
        if held is None or held["at"] <= snapshot["at"]:
            self.latest[snapshot["supervisor_id"]] = snapshot
        self.ended += snapshot.get("recent_jobs", {}).get("failed", [])

    def events_of(self, supervisor_id: str) -> list[dict[str, Any]]:
        """The recent events of one supervisor's latest snapshot."""
        return list(self.latest.get(supervisor_id, {}).get("events", []))

    def running(self) -> list[dict[str, Any]]:
        return [each for each in self.latest.values() if not each.get("stopped")]


async def _cancel(queue: QueueSettings, prefix: str, wait_s: float, timeout_s: float) -> int:
    heard = _Snapshots()
    listener = FarmListener(queue, heard.keep, connection_name="fast-app cancel")
    try:
        await listener.start()
        await asyncio.sleep(wait_s)
        matches = find_jobs(prefix, heard.running())
        refusal = _refusal(prefix, matches, bool(heard.latest), queue.name)
        if refusal is not None:
            print(f"fast-app cancel: {refusal}", file=sys.stderr)
            return EXIT_FAILED
        job = matches[0]
        # Only the events that come after the command can answer it.
        seen = max((int(e.get("seq", 0)) for e in heard.events_of(job.supervisor_id)), default=-1)
        await listener.send_command(job.supervisor_id, cancel_command(job.job_id))
        return await _wait_for_the_end(heard, job, seen, timeout_s)
    finally:
        await listener.close()


def _refusal(prefix: str, matches: list[ListedJob], heard: bool, queue: str) -> str | None:
    if not heard:
        return f"no supervisor is serving {queue} (no snapshot heard): no running job to cancel"
    if not matches:
        return f"no running or waiting job's id starts with {printable(prefix)}"
    if len(matches) > 1:
        listed = ", ".join(f"{job.job_id} ({job.function})" for job in matches[:10])
        return f"{printable(prefix)} matches {len(matches)} running or waiting jobs: {listed}"
    job = matches[0]
    if job.in_thread:
        return _in_a_thread(job)
    return None


def _in_a_thread(job: ListedJob) -> str:
    return (
        f"cannot cancel job {job.job_id} ({job.function}): it runs in a thread (a plain "
        "function), and threads cannot be stopped"
    )


async def _wait_for_the_end(heard: _Snapshots, job: ListedJob, seen: int, timeout_s: float) -> int:
    """Wait for the job to end as cancelled; what the supervisor said if not."""
    deadline = time.monotonic() + timeout_s
    forwarded = False
    while time.monotonic() < deadline:
        ended = next(
            (
                end
                for end in heard.ended
                if end.get("id") == job.job_id and end.get("outcome") == "cancelled"
            ),
            None,
        )
        if ended is not None:
            print(_cancelled(job, started=bool(ended.get("started", True))))
            return EXIT_OK
        for event in heard.events_of(job.supervisor_id):
            if event.get("job_id") != job.job_id or int(event.get("seq", 0)) <= seen:
                continue
            if event.get("kind") in (_REFUSED, _NOT_FOUND):
                print(f"fast-app cancel: {event.get('message')}", file=sys.stderr)
                return EXIT_FAILED
            forwarded = forwarded or event.get("kind") == _FORWARDED
        if job.waiting and _started_in_a_thread(heard, job):
            # Its worker refuses the cancel: a thread cannot be stopped, and it never ends
            # as cancelled.
            print(
                f"fast-app cancel: {_in_a_thread(job)}; it started before the cancel reached it",
                file=sys.stderr,
            )
            return EXIT_FAILED
        await asyncio.sleep(0.05)
    if forwarded:
        print(
            f"worker {job.worker_id} was told to cancel job {job.job_id} ({job.function}); "
            f"it had not ended {timeout_s:g}s later (a job that ignores cancellation)"
        )
        return EXIT_OK
    print(
        f"fast-app cancel: supervisor {job.supervisor_id} did not confirm the cancel of "
        f"job {job.job_id} within {timeout_s:g}s",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _cancelled(job: ListedJob, *, started: bool) -> str:
    """What to say of ``job`` once it ended as cancelled (``started``: its code ran)."""
    requeue = f"dead-lettered with reason 'cancelled' (fast-app dlq requeue {job.job_id} runs it"
    if not started:
        return (
            f"cancelled job {job.job_id} ({job.function}) before it started: it was waiting "
            f"for a slot on worker {job.worker_id}, and never ran; {requeue})"
        )
    if job.waiting:
        return (
            f"cancelled job {job.job_id} ({job.function}) while it ran on worker "
            f"{job.worker_id}: it started before the cancel reached it; {requeue} again)"
        )
    return (
        f"cancelled job {job.job_id} ({job.function}) on worker {job.worker_id}; {requeue} again)"
    )


def _started_in_a_thread(heard: _Snapshots, job: ListedJob) -> bool:
    """Whether the latest snapshot of ``job``'s supervisor lists it running in a thread."""
    snapshot = heard.latest.get(job.supervisor_id)
    listed = [] if snapshot is None else find_jobs(job.job_id, [snapshot])
    return any(found.job_id == job.job_id and found.in_thread for found in listed)
