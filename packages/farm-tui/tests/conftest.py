"""Fixtures for the dashboard's tests: a supervisor in this process on the session broker."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from farm_testkit import SUPPORT

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, reset_settings
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.settings import FarmSettings
from fast_app.farm_tui import EmbeddedFarm
from fast_app.farm_tui._output import OutputCapture


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def queue_settings(
    rabbitmq_url: str, farm_queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> QueueSettings:
    """Queue settings for a fresh queue; workers spawned from here find the test jobs."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("QUEUE_RETRY_BASE_S", "0.2")
    monkeypatch.setenv("QUEUE_RETRY_CAP_S", "1")
    return configure(
        driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm_queue_name, connect_timeout_s=10
    )


def farm_settings(**overrides: object) -> FarmSettings:
    """Fast intervals, the test jobs allowed; ``overrides`` on top."""
    settings: dict[str, object] = {
        "min_workers": 1,
        "max_workers": 2,
        "concurrency": 8,
        "allowed_modules": ("farm_jobs",),
        "grace_period_s": 10.0,
        "heartbeat_interval_s": 0.2,
        "scale_check_interval_s": 0.3,
        "scale_cooldown_s": 30.0,
    }
    settings.update(overrides)
    return FarmSettings(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def embedded_farm(
    request: pytest.FixtureRequest, queue_settings: QueueSettings
) -> AsyncIterator[EmbeddedFarm]:
    """A supervisor for the test's queue, not started (the dashboard starts it).

    A test marks ``@pytest.mark.farm(min_workers=..)`` for other settings; ``{queue}``
    in a string stands for the test's queue (``queues="{queue}.emails=1..2"``).
    """
    marker = request.node.get_closest_marker("farm")
    overrides = {
        key: value.format(queue=queue_settings.name) if isinstance(value, str) else value
        for key, value in ({} if marker is None else marker.kwargs).items()
    }
    farm = EmbeddedFarm(farm_settings(**overrides), queue_settings, output=OutputCapture())
    pids: set[int] = set()
    farm.supervisor.add_snapshot_listener(
        lambda snapshot: pids.update(int(w["pid"]) for w in snapshot["workers"])
    )
    try:
        yield farm
    finally:
        farm.close(timeout_s=15)
        await close_queue()
        for pid in pids:  # a test that failed half-way may leave some
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "farm(**settings): farm settings of embedded_farm")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """The test jobs' report file."""
    return tmp_path / "results.jsonl"
