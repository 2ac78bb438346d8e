"""Job functions for the tests of the test kit (``JobRecorder``); importable by path."""

from __future__ import annotations

import datetime as dt

from fast_app.core.queue import current_job, queue

runs: list[tuple[str, int]] = []
"""``(name, attempt)`` of each run, in the order the jobs ran."""

failures_left: dict[str, int] = {}
"""How many more times ``flaky(name)`` fails before it succeeds."""


async def record_signup(user_id: str, at: dt.datetime, *, plan: str = "free") -> None:
    runs.append((user_id, _attempt()))


async def notify(to: str, *lines: str, **headers: str) -> None:
    runs.append((to, _attempt()))


async def take_no_arguments() -> None:
    runs.append(("nothing", _attempt()))


async def note(name: str) -> None:
    runs.append((name, _attempt()))


async def flaky(name: str) -> None:
    runs.append((name, _attempt()))
    if failures_left.get(name, 0) > 0:
        failures_left[name] -= 1
        raise RuntimeError(f"{name} failed")


async def note_then_queue(name: str, child: str, child_delay_s: float) -> None:
    runs.append((name, _attempt()))
    await queue(note, child, __delay_s=child_delay_s)


def reset() -> None:
    runs.clear()
    failures_left.clear()


def names() -> list[str]:
    return [name for name, _ in runs]


def _attempt() -> int:
    job = current_job()
    assert job is not None, "runs only as a job"
    return job.attempt
