"""The demo for real: a private broker, the API served by uvicorn in a subprocess, a
supervisor with a pool per queue (the default queue, emails, reports), HTTP calls to each
endpoint.

Jobs record their runs in the data directory (``GET /jobs/{id}`` reads them back); both
processes export spans to one JSON-lines file through the demo's own telemetry setup,
``OTEL_TRACES_EXPORTER=jsonl`` naming the farm tests' exporter (``farm_spans``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from farm_spans import read_lines
from farm_testkit import SUPPORT, Farm, SupervisorProcess, start_supervisor, wait_until

from fast_app.core.queue import QueueSettings
from fast_app.farm.dead_letters import DeadLetter, list_dead_letters

# Slow on purpose (retries with backoff, a soft timeout): room beyond the 60 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

T = TypeVar("T")
USER = "usr_e2e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 60, what: str
) -> T:
    """Poll the async ``probe`` until it returns something; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await _pause()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


@dataclass
class Demo:
    """The served demo, its client, and what its processes left behind."""

    client: httpx.AsyncClient
    server: subprocess.Popen[bytes]
    server_log: Path
    supervisor: SupervisorProcess
    spans_file: Path
    queue: QueueSettings
    emails: str
    reports: str

    def logs(self) -> str:
        return self.server_log.read_text(errors="replace")[-4000:] + self.supervisor.log()[-6000:]

    async def post(self, path: str, request_id: str, body: dict[str, Any]) -> httpx.Response:
        response = await self.client.post(
            path, json=body, headers={"X-Request-ID": request_id, "X-User-ID": USER}
        )
        assert response.status_code in (201, 202), response.text
        return response

    async def runs(self, job_id: str, done: Callable[[list[dict[str, Any]]], bool]) -> Any:
        async def probe() -> list[dict[str, Any]] | None:
            runs: list[dict[str, Any]] = (await self.client.get(f"/jobs/{job_id}")).json()["runs"]
            return runs if done(runs) else None

        try:
            return await eventually(probe, what=f"the runs of job {job_id}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None

    async def dead_letters(self, job_ids: set[str]) -> dict[str, tuple[str, DeadLetter]]:
        """Each job's dead letter, with the jobs queue whose dead-letter queue holds it."""

        async def probe() -> dict[str, tuple[str, DeadLetter]] | None:
            queues = (self.queue.name, self.emails, self.reports)
            letters = {
                letter.job_id: (letter.queue or "", letter)
                for letter in await list_dead_letters(self.queue, queues=queues)
            }
            return letters if job_ids <= letters.keys() else None

        try:
            return await eventually(probe, timeout=25, what=f"dead letters of {job_ids}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _ended(runs: list[dict[str, Any]]) -> bool:
    return bool(runs) and runs[-1]["status"] != "running"


@pytest.fixture
async def demo(rabbitmq_url: str, farm_queue_name: str, tmp_path: Path) -> AsyncIterator[Demo]:
    spans_file = tmp_path / "spans.jsonl"
    # Queue names of this test's own: emails routed as the demo routes them by default,
    # reports named by the report endpoints.
    emails, reports = f"{farm_queue_name}.emails", f"{farm_queue_name}.reports"
    environment = {
        "QUEUE_DRIVER": "async_farm",
        "RABBITMQ_URL": rabbitmq_url,
        "QUEUE_NAME": farm_queue_name,
        "QUEUE_ROUTES": f"fast_app_demo.jobs.send_welcome_email={emails}",
        "DEMO_REPORTS_QUEUE": reports,
        "DEMO_DATA_DIR": str(tmp_path / "data"),
        "OTEL_TRACES_EXPORTER": "jsonl",
        "FARM_TEST_SPANS_FILE": str(spans_file),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    port = _free_port()
    server_log = tmp_path / "server.log"
    with open(server_log, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "fast_app_demo", "serve", "--port", str(port)],
            env={
                **os.environ,
                **environment,
                "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    farm = Farm(rabbitmq_url, farm_queue_name, tmp_path / "unused.jsonl", tmp_path)
    supervisor = await start_supervisor(
        farm,
        "--queues",
        f"{farm_queue_name}=2..2,{emails}=1..1,{reports}=1..1",
        "--max-workers",
        "4",
        "--imports",
        "fast_app_demo.jobs",
        # A job blocking its worker's event loop silences the heartbeats (every 0.2s
        # here): the hard timeout, not the hung-worker rule, must be what ends it.
        "--heartbeat-tolerance",
        "20",
        FARM_ALLOWED_MODULES="fast_app_demo.jobs",
        **environment,
    )
    queue = QueueSettings(driver="async_farm", rabbitmq_url=rabbitmq_url, name=farm_queue_name)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:

            async def served() -> bool | None:
                assert server.poll() is None, server_log.read_text(errors="replace")
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/")).status_code == 200 or None
                return None

            await eventually(served, what="the demo to serve")
            await wait_until(
                lambda: supervisor.log().count("consuming") >= 4, message="4 consuming workers"
            )
            yield Demo(client, server, server_log, supervisor, spans_file, queue, emails, reports)
    finally:
        for process in (server, supervisor.process):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for pid in supervisor.worker_pids().values():  # they exit when they lose it anyway
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_the_demo_on_the_farm_from_http_request_to_worker(demo: Demo) -> None:
    # Given the API on the async_farm driver and a supervisor with a pool per queue
    # When each endpoint is called
    signup = await demo.post("/signup", "e2e-signup", {"email": "ada@example.com"})
    report = await demo.post("/reports", "e2e-report", {"sections": 3})
    soft = await demo.post("/reports", "e2e-soft", {"sections": 25})
    order = await demo.post("/orders", "e2e-order", {"sku": "book-42"})
    invoice = await demo.post("/invoices", "e2e-invoice", {"customer": "ACME Corp"})
    bulk = await demo.post("/thumbnails", "e2e-bulk", {"count": 40})
    job_id = {
        name: response.json()["job"]["job_id"]
        for name, response in [
            ("signup", signup),
            ("report", report),
            ("soft", soft),
            ("order", order),
            ("invoice", invoice),
        ]
    }

    # Then the responses came back before the jobs ran: workers run them
    assert signup.json()["job"]["driver"] == "async_farm"
    assert signup.json()["job"]["outcome"] is None

    # and each job went to its queue: the email by route, reports by name, the rest default
    assert signup.json()["job"]["queue"] == demo.emails
    assert report.json()["job"]["queue"] == soft.json()["job"]["queue"] == demo.reports
    assert order.json()["job"]["queue"] == invoice.json()["job"]["queue"] == demo.queue.name

    # and the welcome email ran on a worker with the request's id and the new user's id
    [email] = await demo.runs(job_id["signup"], _ended)
    user_id = signup.json()["user_id"]
    assert (email["status"], email["request_id"], email["user_id"], email["queue"]) == (
        "succeeded",
        "e2e-signup",
        user_id,
        demo.emails,
    )
    assert not email["worker"].endswith(f"-{demo.server.pid}")
    assert b"X-Request-ID: e2e-signup" in _read(email["result"]["email"])

    # and the small report succeeded, the big one was cancelled at its soft timeout
    [small] = await demo.runs(job_id["report"], _ended)
    assert (small["status"], small["queue"]) == ("succeeded", demo.reports)
    [big] = await demo.runs(job_id["soft"], _ended)
    assert big["status"] == "cancelled"
    assert big["error"] == "cancelled at its soft timeout (1s)"

    # and the flaky order failed twice, then succeeded on attempt 3, every run on its queue
    order_runs = await demo.runs(
        job_id["order"], lambda runs: any(r["status"] == "succeeded" for r in runs)
    )
    assert [(r["attempt"], r["status"], r["queue"]) for r in order_runs] == [
        (1, "failed", demo.queue.name),
        (2, "failed", demo.queue.name),
        (3, "succeeded", demo.queue.name),
    ]

    # and the invoice failed on each of its 3 attempts
    invoice_runs = await demo.runs(job_id["invoice"], lambda runs: len(runs) == 3 and _ended(runs))
    assert [r["status"] for r in invoice_runs] == ["failed"] * 3

    # and every run of every job saw its request's context
    for name in ("report", "soft", "order", "invoice"):
        for run in await demo.runs(job_id[name], _ended):
            assert (run["request_id"], run["user_id"]) == (f"e2e-{name}", USER), run

    # and the bulk's 40 thumbnails were made
    batch = bulk.json()["follow"]

    async def thumbnails_done() -> bool | None:
        return (await demo.client.get(batch)).json()["done"] == 40 or None

    await eventually(thumbnails_done, what="40 thumbnails")

    # When a report that blocks its thread overruns its hard timeout (last: its worker
    # ends, and jobs in flight there would be redelivered)
    hard = await demo.post("/reports", "e2e-hard", {"sections": 25, "renderer": "blocking"})
    job_id["hard"] = hard.json()["job"]["job_id"]

    # Then the dead-letter queues hold the invoice (the default queue's), the soft and the
    # hard overruns (the reports queue's)
    letters = await demo.dead_letters({job_id["invoice"], job_id["soft"], job_id["hard"]})
    assert letters[job_id["invoice"]][0] == demo.queue.name
    assert letters[job_id["soft"]][0] == letters[job_id["hard"]][0] == demo.reports
    invoice_letter = letters[job_id["invoice"]][1]
    assert invoice_letter.reason == "failed"
    assert invoice_letter.error_type == "fast_app_demo.errors.InvoiceRejectedError"
    assert invoice_letter.attempts == 3
    assert invoice_letter.context == {"request_id": "e2e-invoice", "user_id": USER}
    assert letters[job_id["soft"]][1].reason == "soft_timeout"
    assert letters[job_id["hard"]][1].reason == "hard_timeout"
    assert "hard timeout" in demo.supervisor.log()  # it killed the worker at the deadline
    # and the demo's own view of them says which queue's
    shown = await demo.client.get("/dead-letters", params={"job_id": job_id["soft"]})
    assert [(x["queue"], x["reason"]) for x in shown.json()["dead_letters"]] == [
        (demo.reports, "soft_timeout")
    ]

    # and one trace runs from the HTTP request to the span inside the job on a worker
    trace_id = signup.headers["traceresponse"].split("-")[1]
    assert email["trace_id"] == trace_id

    def trace_spans() -> list[dict[str, Any]]:
        return [s for s in read_lines(demo.spans_file) if s["trace_id"] == trace_id]

    await wait_until(
        lambda: len(trace_spans()) >= 4, message="the signup trace's spans", timeout=10
    )
    spans = {span["name"]: span for span in trace_spans()}
    server = spans["POST /signup"]
    publish = spans[f"publish {demo.emails}"]
    process = spans[f"process {demo.emails}"]
    inside = spans["render welcome email"]
    assert server["kind"] == "SERVER" and server["parent_id"] is None
    assert (publish["kind"], publish["parent_id"]) == ("PRODUCER", server["span_id"])
    assert (process["kind"], process["parent_id"]) == ("CONSUMER", publish["span_id"])
    assert (inside["kind"], inside["parent_id"]) == ("INTERNAL", process["span_id"])
    assert server["pid"] == publish["pid"] == demo.server.pid
    assert process["pid"] == inside["pid"] != demo.server.pid
