"""Quickstart: enqueue jobs with the default sync driver (no broker needed).

Run: ``uv run python examples/quickstart.py``
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys

from welcome_jobs import generate_report, send_welcome_email

from fast_app.core.context import context
from fast_app.core.queue import Job, close, queue


def _status(job: Job) -> str:
    if job.outcome is None:  # async_farm: the broker stored it, a worker runs it
        return "stored; a worker runs it"
    return job.outcome.status.value


async def main() -> None:
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="  log: %(levelname)s %(message)s"
    )
    context.set("request_id", "req-42")

    print("queue(send_welcome_email, ...)")
    job = await queue(send_welcome_email, "66f2d3", dt.datetime.now(dt.UTC))
    print(f"  -> job {job.id} on driver {job.driver}: {_status(job)}")

    print("queue(generate_report, 7, __soft_timeout_s=0.2)")
    job = await queue(generate_report, 7, __soft_timeout_s=0.2)
    print(f"  -> job {job.id}: {_status(job)}")
    await close()  # the broker connection, with QUEUE_DRIVER=async_farm


if __name__ == "__main__":
    asyncio.run(main())
