"""Job functions for the farm's tests. They report to a JSON-lines file named by the test.

Each line is one event: {"event": ..., "tag": ..., "pid": ..., "context": {...}}. Small
appends to a file opened with O_APPEND are atomic, so several workers can share one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from fast_app.core.context import context
from fast_app.core.queue import current_job


def report(results: str, event: str, tag: str, **extra: Any) -> None:
    line = {"event": event, "tag": tag, "pid": os.getpid(), "context": context.snapshot()}
    line.update(extra)
    with open(results, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def read_events(results: str | Path) -> list[dict[str, Any]]:
    path = Path(results)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


async def record(results: str, tag: str) -> None:
    report(results, "ran", tag, at=time.time())


def record_in_thread(results: str, tag: str) -> None:
    report(results, "ran", tag, at=time.time())


async def sleep_then_record(results: str, tag: str, seconds: float) -> None:
    report(results, "started", tag)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        report(results, "cancelled", tag)
        raise
    report(results, "finished", tag)


def sleep_in_thread_then_record(results: str, tag: str, seconds: float) -> None:
    """A plain function (runs in a worker thread, which nothing can cancel)."""
    report(results, "started", tag)
    time.sleep(seconds)
    report(results, "finished", tag)


async def fail(results: str, tag: str) -> None:
    report(results, "ran", tag)
    raise ValueError(f"{tag} always fails")


async def flaky(results: str, tag: str, failures: int) -> None:
    """Fails on its first ``failures`` runs (counted in the results file), then succeeds."""
    earlier = sum(1 for e in read_events(results) if e["tag"] == tag and e["event"] == "attempt")
    report(results, "attempt", tag, at=time.time())
    if earlier < failures:
        raise RuntimeError(f"{tag} attempt {earlier + 1} fails")
    report(results, "ran", tag)


async def block_loop(results: str, tag: str, seconds: float) -> None:
    """CPU-bound code in an async function: blocks the worker's event loop."""
    report(results, "started", tag)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    report(results, "finished", tag)


async def on_startup() -> None:
    """FARM_STARTUP hook: reports to the file named by FARM_TEST_HOOKS."""
    report(os.environ["FARM_TEST_HOOKS"], "startup", "hooks")


def on_shutdown() -> None:
    """FARM_SHUTDOWN hook (a plain function works too)."""
    report(os.environ["FARM_TEST_HOOKS"], "shutdown", "hooks")


# -- tracing tests: jobs that make a span of their own with the global API, as app code does


def _inside(tag: str) -> None:
    from opentelemetry import trace

    with trace.get_tracer("farm_jobs").start_as_current_span(f"inside {tag}"):
        pass


async def traced_record(results: str, tag: str) -> None:
    _inside(tag)
    report(results, "ran", tag)


async def traced_fail(results: str, tag: str) -> None:
    _inside(tag)
    report(results, "ran", tag)
    raise ValueError(f"{tag} always fails")


async def traced_block_loop(results: str, tag: str, seconds: float) -> None:
    """Makes a span (exported while the job runs), then blocks the event loop."""
    _inside(tag)
    await block_loop(results, tag, seconds)


async def traced_sleep(results: str, tag: str, seconds: float) -> None:
    """Makes a span, then sleeps without blocking the loop (past a hard timeout)."""
    _inside(tag)
    report(results, "started", tag)
    await asyncio.sleep(seconds)
    report(results, "finished", tag)


# -- named queues: jobs that report the queue they run from ---------------------------


async def record_queue(results: str, tag: str) -> None:
    job = current_job()
    report(
        results,
        "ran",
        tag,
        at=time.time(),
        queue=None if job is None else job.queue,
        attempt=None if job is None else job.attempt,
    )


async def sleep_on_queue(results: str, tag: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await record_queue(results, tag)


async def fail_on_queue(results: str, tag: str) -> None:
    await record_queue(results, tag)
    raise RuntimeError(f"{tag} failed")


async def write_on_link(results: str, tag: str, lines: list[str]) -> None:
    """Write ``lines`` on the worker's own link to its supervisor, as job code that finds
    the link's descriptor could (forged heartbeats)."""
    link = int(os.environ["FARM_SUPERVISOR_FD"])
    for line in lines:
        os.write(link, line.encode())
    report(results, "ran", tag)


# -- prefetch apart from concurrency: a job that runs until the test lets it end ------


async def run_until_file(results: str, tag: str, path: str, timeout: float = 60) -> None:
    """Reports ``started``, runs until ``path`` exists (or ``timeout``), reports ``finished``."""
    report(results, "started", tag)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:  # noqa: ASYNC240 (a stat)
        await asyncio.sleep(0.02)
    report(results, "finished", tag)


async def flaky_once_file_exists(results: str, tag: str, failures: int, path: str) -> None:
    """Waits until ``path`` exists (60 s at most), then behaves as ``flaky``."""
    report(results, "started", tag)
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:  # noqa: ASYNC240 (a stat)
        await asyncio.sleep(0.02)
    await flaky(results, tag, failures)


# -- cluster failover: a short job that says when it finished -------------------------


async def cluster_job(results: str, tag: str, seconds: float) -> None:
    """Sleeps ``seconds``, then reports ``finished`` with the wall-clock time (``at``)."""
    await asyncio.sleep(seconds)
    report(results, "finished", tag, at=time.time())
