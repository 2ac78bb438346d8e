"""The dashboard under faults, on real farms: the broker lost and back, a supervisor
killed, the broker stopped under ``work --tui``, a backlog nobody consumes.

The tests that stop a broker do it to a node of this module's own, never the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import farm_jobs
import pytest
from farm_testkit import Farm, SupervisorProcess, start_supervisor, wait_until

from fast_app.core.queue import close as close_queue
from fast_app.core.queue import configure, queue
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode, rabbitmq_node
from fast_app.farm.settings import FarmSettings
from fast_app.farm_tui import EmbeddedFarm, FarmApp, RemoteFarm
from fast_app.farm_tui._output import OutputCapture
from fast_app.farm_tui.screens.overview import queue_rows, supervisor_rows

SIZE = (140, 40)


@pytest.fixture(scope="module")
def own_node() -> Iterator[RabbitMQNode]:
    """A broker of this module's own, to stop and start."""
    with rabbitmq_node() as node:
        yield node


@pytest.fixture
def own_broker(own_node: RabbitMQNode) -> Iterator[RabbitMQNode]:
    """The module's node, running at the start of the test and again after it."""
    own_node.start_broker()
    yield own_node
    own_node.start_broker()


def status_line(app: FarmApp) -> str:
    """The status bar as the operator reads it."""
    return app.status_text(app.model.view(app.clock())).plain


def worker_count(app: FarmApp) -> int:
    return len(app.model.view(time.time()).workers)


@contextlib.asynccontextmanager
async def farm_elsewhere(
    url: str, name: str, tmp_path: Path, supervisor_id: str
) -> AsyncIterator[SupervisorProcess]:
    """A supervisor of one worker in another process; killed with its workers after."""
    farm = Farm(url, name, tmp_path / "results.jsonl", tmp_path)
    supervisor = await start_supervisor(
        farm, "--min-workers", "1", "--supervisor-id", supervisor_id
    )
    pids: set[int] = set()
    try:
        yield supervisor
    finally:
        pids.update(supervisor.worker_pids().values())
        if supervisor.process.poll() is None:
            supervisor.process.kill()
            supervisor.process.wait(10)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def top(settings: QueueSettings, request: pytest.FixtureRequest) -> AsyncIterator[RemoteFarm]:
    link = RemoteFarm(settings, connection_name=request.node.nodeid, read_interval_s=0.3)
    try:
        link.connect()
        yield link
    finally:
        link.close()


async def test_top_over_a_broker_outage_says_reconnecting_then_connected(
    own_broker: RabbitMQNode, farm_queue_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = configure(
        driver="async_farm", rabbitmq_url=own_broker.url, name=farm_queue_name, connect_timeout_s=5
    )
    async with (
        farm_elsewhere(own_broker.url, farm_queue_name, tmp_path, "sup-outage"),
        top(settings, request) as link,
    ):
        app = FarmApp(link, refresh_s=0.1)
        async with app.run_test(size=SIZE):
            # Given top connected to a farm of one worker, its data fresh.
            await wait_until(lambda: worker_count(app) == 1, message="its worker, heard")
            assert "connected to" in status_line(app)

            # When the broker dies.
            await asyncio.to_thread(own_broker.stop_broker, graceful=False)

            # Then top says it reconnects and its data is stale; the figures say so.
            await wait_until(
                lambda: (
                    "reconnecting since" in status_line(app)
                    and "STALE: last data" in status_line(app)
                ),
                timeout=10,
                message="reconnecting, data stale",
            )
            view = app.model.view(app.clock())
            assert view.data_stale and view.enqueue_rate is None
            assert all(worker.data_stale for worker, _ in view.workers)
            assert [cells[-2][0] for _, cells in supervisor_rows(view)] == ["silent"]

            # When the broker is back.
            await asyncio.to_thread(own_broker.start_broker)

            # Then top is connected again and its data fresh.
            await wait_until(
                lambda: "connected to" in status_line(app) and "STALE" not in status_line(app),
                timeout=30,
                message="connected, data fresh",
            )
            view = app.model.view(app.clock())
            assert not view.data_stale
            assert [cells[-2][0] for _, cells in supervisor_rows(view)] == ["running"]


async def test_top_shows_a_killed_supervisor_silent_not_running(
    queue_settings: QueueSettings, rabbitmq_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with (
        farm_elsewhere(rabbitmq_url, queue_settings.name, tmp_path, "sup-killed") as supervisor,
        top(queue_settings, request) as link,
    ):
        app = FarmApp(link, refresh_s=0.1)
        async with app.run_test(size=SIZE):
            await wait_until(lambda: worker_count(app) == 1, message="its worker, heard")
            assert [cells[-2][0] for _, cells in supervisor_rows(app.model.view(time.time()))] == [
                "running"
            ]

            # When its supervisor is SIGKILLed (no last snapshot saying it stops).
            supervisor.process.kill()

            # Then top shows it silent and its data stale, not running.
            def shown_states() -> list[str]:
                view = app.model.view(app.clock())
                return [cells[-2][0] for _, cells in supervisor_rows(view)]

            await wait_until(lambda: shown_states() == ["silent"], timeout=5, message="silent")
            assert "STALE: last data" in status_line(app)
            view = app.model.view(app.clock())
            assert view.supervisors[0].stale
            assert all(worker.data_stale for worker, _ in view.workers)


async def test_work_tui_says_the_broker_is_unreachable(
    own_broker: RabbitMQNode, farm_queue_name: str
) -> None:
    settings = configure(
        driver="async_farm", rabbitmq_url=own_broker.url, name=farm_queue_name, connect_timeout_s=5
    )
    farm_settings = FarmSettings(
        min_workers=1,
        max_workers=1,
        allowed_modules=("farm_jobs",),
        grace_period_s=5.0,
        heartbeat_interval_s=0.2,
        scale_check_interval_s=0.3,
    )
    farm = EmbeddedFarm(farm_settings, settings, output=OutputCapture())
    try:
        app = FarmApp(farm, refresh_s=0.1)
        async with app.run_test(size=SIZE):
            # Given the farm's own dashboard, its worker up and the queue read.
            await wait_until(lambda: worker_count(app) == 1, message="the worker")
            await wait_until(
                lambda: app.model.view(app.clock()).queue.ready is not None, message="a read"
            )
            assert "broker unreachable" not in status_line(app)

            # When the broker dies.
            await asyncio.to_thread(own_broker.stop_broker, graceful=False)

            # Then the status bar says since when it is unreachable; the data stays fresh
            # (the supervisor is in this process and still reports).
            await wait_until(
                lambda: "broker unreachable since" in status_line(app),
                timeout=15,
                message="broker unreachable",
            )
            view = app.model.view(app.clock())
            assert view.broker_unreachable_since is not None and not view.data_stale

            # When it is back, the warning goes.
            await asyncio.to_thread(own_broker.start_broker)
            await wait_until(
                lambda: "broker unreachable" not in status_line(app),
                timeout=30,
                message="the broker read again",
            )
    finally:
        await asyncio.to_thread(farm.close, 15)
        await close_queue()


async def test_top_without_a_supervisor_shows_a_backlog_with_no_consumers(
    queue_settings: QueueSettings, results: Path, request: pytest.FixtureRequest
) -> None:
    # Given 50 jobs ready and no farm at all.
    for number in range(50):
        await queue(farm_jobs.record, str(results), f"job-{number}")
    await close_queue()

    async with top(queue_settings, request) as link:
        app = FarmApp(link, refresh_s=0.1)
        async with app.run_test(size=SIZE):
            # Then top reads the queue from the broker and says so first on the line.
            await wait_until(
                lambda: status_line(app).startswith(" BACKLOG WITH NO CONSUMERS: 50 ready"),
                timeout=10,
                message="the banner",
            )
            view = app.model.view(app.clock())
            assert view.unconsumed == (queue_settings.name,)
            assert view.supervisors == ()
            (row,) = queue_rows(view, 130)
            cells = dict(
                zip(("queue", "pool", "ready"), (cell[0] for cell in row[1]), strict=False)
            )
            assert cells["queue"] == queue_settings.name
            assert cells["ready"] == "50"
            assert view.queue.consumers == 0
