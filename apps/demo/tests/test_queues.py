"""The demo's queues: welcome emails routed to ``emails``, reports named to ``reports``,
the rest on ``QUEUE_NAME``; and the farm's pools for them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fast_app_demo.activity import ActivityLog
from fast_app_demo.queues import (
    DEFAULT_ROUTES,
    DemoQueues,
    current_queues,
    use_default_routes,
)
from fast_app_demo.settings import DemoSettings, get_settings

from fast_app.core.queue import QueueSettings, reset_settings
from fast_app.core.queue.queues import QueueRoutes


@pytest.fixture
def sync_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo's environment on the sync driver, none of the caller's queue settings;
    its data directory."""
    for name in list(os.environ):
        if name.startswith(("QUEUE_", "DEMO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUEUE_DRIVER", "sync")
    monkeypatch.setenv("QUEUE_RETRY_BASE_S", "0.01")  # the flaky order's retries, quickly
    monkeypatch.setenv("DEMO_DATA_DIR", str(tmp_path))
    # In-process: the global tracer provider is the test process's, not the demo's.
    monkeypatch.setenv("DEMO_TELEMETRY", "0")
    get_settings.cache_clear()
    reset_settings()
    yield tmp_path
    get_settings.cache_clear()
    reset_settings()


async def test_the_demo_routes_emails_and_reports_to_their_queues(sync_demo: Path) -> None:
    # Given the demo as its entry points set it up, QUEUE_ROUTES unset, on the sync driver
    use_default_routes()
    from fast_app_demo.app import create_app  # imports the jobs: after the settings

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        # When a user signs up, a report and a batch of reports are asked for, and an
        # order is placed
        signup = (await client.post("/signup", json={"email": "ada@example.com"})).json()
        report = (await client.post("/reports", json={"sections": 1})).json()
        batch = (await client.post("/reports/batch", json={"count": 2, "sections": 1})).json()
        order = (await client.post("/orders", json={"sku": "book-42"})).json()

    # Then the welcome email went to emails (QUEUE_ROUTES), the reports to reports (named
    # in the call), and the order to QUEUE_NAME: what the sync driver's job.queue says
    assert signup["job"]["queue"] == "emails"
    assert report["job"]["queue"] == batch["queue"] == "reports"
    assert order["job"]["queue"] == "async_farm.jobs"
    # and each run of each job knew its queue (current_job().queue)
    queues = {(run.function, run.queue) for run in ActivityLog(sync_demo).runs()}
    assert queues == {
        ("send_welcome_email", "emails"),
        ("generate_report", "reports"),
        ("notify_warehouse", "async_farm.jobs"),
    }


def test_queue_routes_set_by_the_operator_win_over_the_demos(
    sync_demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given QUEUE_ROUTES set, even empty, and another reports queue
    monkeypatch.setenv("QUEUE_ROUTES", "")
    monkeypatch.setenv("DEMO_REPORTS_QUEUE", "slow")

    # When the demo sets up its routes
    use_default_routes()

    # Then the welcome emails are not routed: they go to QUEUE_NAME, like orders
    assert current_queues() == DemoQueues(
        default="async_farm.jobs", emails="async_farm.jobs", reports="slow"
    )


def test_the_default_route_names_the_welcome_email_job(sync_demo: Path) -> None:
    from fast_app_demo.jobs import send_welcome_email  # telemetry off: see sync_demo

    path = f"{send_welcome_email.__module__}.{send_welcome_email.__qualname__}"
    assert f"{path}=emails" == DEFAULT_ROUTES


def test_the_farm_serves_each_queue_with_its_own_pool(sync_demo: Path) -> None:
    settings = QueueSettings(routes=QueueRoutes.parse(DEFAULT_ROUTES))
    queues = DemoQueues.of(settings, DemoSettings(Path("/unused")))

    assert queues.names() == ("async_farm.jobs", "emails", "reports")
    assert queues.farm_pools() == "async_farm.jobs=1..4,emails=1..2,reports=0..4"


def test_a_queue_serving_two_purposes_gets_one_pool() -> None:
    queues = DemoQueues(default="jobs", emails="jobs", reports="reports")

    assert queues.names() == ("jobs", "reports")
    assert queues.farm_pools() == "jobs=1..4,reports=0..4"
