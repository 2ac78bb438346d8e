"""``demo tour`` on the sync driver: the smoke test CI runs (no broker, no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _environment(data_dir: Path) -> dict[str, str]:
    """The test's environment without queue or OpenTelemetry settings that could leak in."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("QUEUE_", "OTEL_", "DEMO_", "FARM_")) and name != "RABBITMQ_URL"
    }
    return {**environment, "QUEUE_DRIVER": "sync", "DEMO_DATA_DIR": str(data_dir)}


@pytest.mark.slow
def test_the_tour_calls_every_endpoint_and_exits_0(tmp_path: Path) -> None:
    # Given the sync driver and an empty data directory
    # When the tour runs, as `uv run demo tour` would run it
    done = subprocess.run(
        [sys.executable, "-m", "fast_app_demo", "tour"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )

    # Then it exits 0, having seen each job do what it should
    output = done.stdout
    assert done.returncode == 0, f"stdout:\n{output}\nstderr:\n{done.stderr}"
    assert "driver sync" in output
    assert "every job did what it should" in output
    assert "not as expected" not in output
    # the welcome email ran with the request's id and the new user's id, and was written
    assert "succeeded in" in output
    assert "request_id=tour-signup user_id=usr_" in output
    assert list((tmp_path / "outbox").glob("*.eml"))
    # the big async report was cancelled at its soft timeout
    assert "cancelled at its soft timeout (1s)" in output
    assert "queue() returned outcome soft_timeout, logged as a warning." in output
    # the blocking one could not be stopped: no hard timeout on sync
    assert "queue() returned outcome succeeded: nothing could stop" in output
    assert "does not enforce hard\n   timeouts" in output
    # the flaky order succeeded on its third attempt, the invoice failed for good
    assert "attempt 3/4 succeeded" in output
    assert "attempt 3/3 failed" in output
    assert "queue() returned outcome failed" in output
    # the bulk endpoint's jobs all ran
    assert "thumbnails written: 20/20" in output
    # one trace from the request to the span inside the job, on the emails queue
    assert "POST /signup > publish emails > process emails > render welcome email" in output
    # each job on its queue: emails routed, reports named, the rest on QUEUE_NAME
    assert ", queue emails); context: request_id=tour-signup" in output
    assert ", queue reports); context: request_id=tour-report" in output
    assert ", queue async_farm.jobs); context: request_id=tour-order" in output
    # and the burst of reports ran on reports, the email after it on emails
    assert "queued 10 reports on reports" in output
    assert "the welcome email went to emails" in output
    assert "reports written: 10/10" in output
    # and the queue's own log lines are part of the story, without tracebacks
    assert "log: WARNING job" in output
    assert "Traceback" not in output + done.stderr
