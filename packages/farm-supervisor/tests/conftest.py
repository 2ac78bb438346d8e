"""Fixtures for the farm's tests: real worker processes against a private RabbitMQ node."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from farm_testkit import Farm

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, reset_settings


@pytest.fixture
async def farm(rabbitmq_url: str, farm_queue_name: str, tmp_path: Path) -> AsyncIterator[Farm]:
    """A farm on the session's broker: settings pointing at a fresh queue, workers cleaned up."""
    configure(
        driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm_queue_name, connect_timeout_s=10
    )
    the_farm = Farm(rabbitmq_url, farm_queue_name, tmp_path / "results.jsonl", tmp_path)
    try:
        yield the_farm
    finally:
        await close_queue()
        reset_settings()
        for process in [w.process for w in the_farm.workers] + [
            s.process for s in the_farm.supervisors
        ]:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for supervisor in the_farm.supervisors:  # their workers exit when they lose it
            for pid in supervisor.worker_pids().values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()
