"""``demo tour``: call each endpoint, show what happened to each job, exit 0 if all went
as expected (a smoke test).

Without ``--url`` the tour serves the app in its own process (no server, no port) on
whatever driver ``QUEUE_DRIVER`` selects; with ``--url`` it tours a running demo, e.g.
one on the async farm. It waits for jobs by polling what they record, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fast_app_demo import telemetry
from fast_app_demo.job_options import REPORT_SECTION_S, WAREHOUSE_SUCCEEDS_ON_ATTEMPT
from fast_app_demo.tour_view import describe_run, describe_trace, trace_id_of

__all__ = ["Tour", "run_tour"]

_TOUR_USER = "usr_tour"
_BIG_REPORT_SECTIONS = 25
_THUMBNAILS = 20
# A burst of reports of 2 s each: on the farm, enough to keep the reports pool busy for a
# while; in-process (sync), they all run inside one request, at once.
_BURST_REPORTS_FARM = 200
_BURST_REPORTS_SYNC = 10
_BURST_SECTIONS = 20
# On the farm, the welcome email queued right after the burst starts within this.
_EMAIL_WAIT_LIMIT_S = 2.0

Runs = list[dict[str, Any]]


_TRACEBACK = "Traceback (most recent call last):"


class _FirstLineFormatter(logging.Formatter):
    """The queue's log lines without their tracebacks: the tour shows the errors itself."""

    def format(self, record: logging.LogRecord) -> str:
        lines = [line for line in super().format(record).splitlines() if line.strip()]
        first = lines[0]
        if first.endswith(_TRACEBACK):  # "job ... failed: Traceback...": keep the error
            first = first.removesuffix(_TRACEBACK) + lines[-1]
        return first


@contextlib.contextmanager
def _queue_log_shown(out: TextIO) -> Iterator[None]:
    """Show what the queue logs (sync driver: timeouts, retries, failures) in the tour."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(_FirstLineFormatter("   log: %(levelname)s %(message)s"))
    logger = logging.getLogger("fast_app.queue")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _ended(runs: Runs) -> bool:
    return bool(runs) and runs[-1]["status"] != "running"


class Tour:
    """The tour's steps against one client; ``problems`` lists what did not go as expected."""

    def __init__(
        self, client: httpx.AsyncClient, out: TextIO, spans: InMemorySpanExporter | None
    ) -> None:
        self.client = client
        self.out = out
        self.spans = spans
        self.problems: list[str] = []
        self.trace_id: str | None = None
        self.driver = "sync"
        self.queues: dict[str, str] = {}
        self.wait_s = 10.0
        # In-process, polling costs nothing; a server logs each poll: go easy on it.
        self.poll_s = 0.05 if spans is not None else 0.2

    # -- plumbing ------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        """Print a line of the tour."""
        print(text, file=self.out, flush=True)

    def expect(self, holds: bool, what: str) -> None:
        """Note (and show) an expectation that did not hold."""
        if not holds:
            self.problems.append(what)
            self.say(f"   !! not as expected: {what}")

    async def post(self, path: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """POST a JSON body as the tour's user; remember the request's trace id."""
        self.say(f"   POST {path} {body}  (X-Request-ID: {request_id})")
        response = await self.client.post(
            path, json=body, headers={"X-Request-ID": request_id, "X-User-ID": _TOUR_USER}
        )
        response.raise_for_status()
        self.trace_id = trace_id_of(response.headers.get("traceresponse"))
        data: dict[str, Any] = response.json()
        return data

    async def runs_until(self, job_id: str, done: Callable[[Runs], bool], what: str) -> Runs:
        """Poll the job's runs until ``done`` holds or the deadline passes."""
        deadline = time.monotonic() + self.wait_s
        while True:
            response = await self.client.get(f"/jobs/{job_id}")
            response.raise_for_status()
            runs: Runs = response.json()["runs"]
            if done(runs):
                return runs
            if time.monotonic() > deadline:
                self.expect(False, f"{what} within {self.wait_s:g}s (job {job_id})")
                return runs
            await asyncio.sleep(self.poll_s)

    async def expect_dead_letter(self, job_id: str, reason: str) -> None:
        """Poll the dead-letter queue (async_farm) for the job; show and check its reason."""
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            response = await self.client.get("/dead-letters", params={"job_id": job_id})
            response.raise_for_status()
            letters: list[dict[str, Any]] = response.json()["dead_letters"]
            if letters:
                letter = letters[0]
                self.say(
                    f"   dead-letter queue (`fast-app dlq list`): reason {letter['reason']}, "
                    f"after {letter['attempts']} run(s)"
                )
                self.expect(letter["reason"] == reason, f"dead-letter reason {reason}")
                return
            await asyncio.sleep(0.5)  # each look reads the dead-letter queue: not too often
        self.expect(False, f"job {job_id} in the dead-letter queue within {self.wait_s:g}s")

    def show(self, runs: Runs, request_id: str, user_id: str) -> None:
        """Show the runs, check their context, and show the request's trace."""
        for run in runs:
            self.say(f"   job: {describe_run(run)}")
            self.expect(
                (run["request_id"], run["user_id"]) == (request_id, user_id),
                f"run {run['attempt']} of {run['function']} to see request_id={request_id} "
                f"user_id={user_id}",
            )
        if runs and runs[-1]["steps"]:
            self.say(f"        last step: {runs[-1]['steps'][-1]}")
        if self.trace_id is None:
            return
        if self.spans is not None:
            chain = describe_trace(self.spans.get_finished_spans(), self.trace_id)
            self.say(f"   trace {self.trace_id}: {chain}")
        else:
            self.say(f"   trace {self.trace_id} (in the API's and the workers' span output)")

    # -- the steps -----------------------------------------------------------------

    async def run(self) -> int:
        """Take the tour; 0 if everything went as expected, else 1."""
        index = (await self.client.get("/")).json()
        self.driver = index["driver"]
        self.queues = index["queues"]
        farm = self.driver == "async_farm"
        self.wait_s = 30.0 if farm else 10.0
        where = (
            "RabbitMQ, run by `fast-app work` workers"
            if farm
            else "the request's own process, before the response (no broker)"
        )
        self.say(f"FastApp demo tour: driver {self.driver}, jobs run in {where}.")
        self.say(f"Jobs record what they did in {index['data_dir']}/activity.")
        started = time.monotonic()
        for step in (
            self.signup,
            self.report,
            self.report_over_soft_timeout,
            self.report_over_hard_timeout,
            self.flaky_order,
            self.failing_invoice,
            self.bulk_thumbnails,
            self.queues_apart,
        ):
            self.say()
            try:
                await step(farm)
            except httpx.HTTPError as error:  # a broken step must not hide the others
                detail = error.response.text if isinstance(error, httpx.HTTPStatusError) else ""
                self.expect(False, f"{step.__name__}: {type(error).__name__}: {error} {detail}")
        self.say()
        took = time.monotonic() - started
        if self.problems:
            self.say(f"Tour finished in {took:.1f}s with {len(self.problems)} surprise(s):")
            for problem in self.problems:
                self.say(f"  - {problem}")
            return 1
        self.say(f"Tour finished in {took:.1f}s: every job did what it should.")
        return 0

    async def signup(self, farm: bool) -> None:
        """Context travels: the job reads the request id and the new user's id."""
        self.say("1. Sign-up: the welcome email is a job; it reads request_id and user_id")
        self.say("   from the context the request set.")
        reply = await self.post("/signup", {"email": "ada@example.com"}, "tour-signup")
        job = reply["job"]
        runs = await self.runs_until(job["job_id"], _ended, "the welcome email job to end")
        self.show(runs, "tour-signup", reply["user_id"])
        self.expect(bool(runs) and runs[-1]["status"] == "succeeded", "the email job succeeded")

    async def report(self, farm: bool) -> None:
        """A job within its timeouts."""
        self.say("2. A small report (5 sections of 0.1s) within its timeouts.")
        reply = await self.post("/reports", {"sections": 5}, "tour-report")
        self.say(
            f"   timeouts: soft {reply['soft_timeout_s']:g}s, hard {reply['hard_timeout_s']:g}s"
        )
        runs = await self.runs_until(reply["job"]["job_id"], _ended, "the report job to end")
        self.show(runs, "tour-report", _TOUR_USER)
        self.expect(bool(runs) and runs[-1]["status"] == "succeeded", "the small report succeeded")

    async def report_over_soft_timeout(self, farm: bool) -> None:
        """The soft timeout cancels an async job."""
        self.say(
            f"3. A big report ({_BIG_REPORT_SECTIONS} sections): an async job, cancelled at its"
        )
        self.say("   soft timeout at its next await.")
        reply = await self.post("/reports", {"sections": _BIG_REPORT_SECTIONS}, "tour-soft")
        job = reply["job"]
        runs = await self.runs_until(job["job_id"], _ended, "the big report to end")
        self.show(runs, "tour-soft", _TOUR_USER)
        self.expect(
            bool(runs) and runs[-1]["status"] == "cancelled", "the big report was cancelled"
        )
        if farm:
            await self.expect_dead_letter(job["job_id"], "soft_timeout")
        else:
            self.say(f"   queue() returned outcome {job['outcome']}, logged as a warning.")
            self.expect(job["outcome"] == "soft_timeout", "outcome soft_timeout")

    async def report_over_hard_timeout(self, farm: bool) -> None:
        """The hard timeout ends a worker whose job blocks its event loop."""
        self.say("4. The same big report with the blocking renderer: it calls a blocking PDF")
        self.say("   library from async code, so the event loop stops and the soft timeout")
        self.say("   cannot fire; only the hard timeout stops it, by ending the worker process.")
        body = {"sections": _BIG_REPORT_SECTIONS, "renderer": "blocking"}
        started = time.monotonic()
        reply = await self.post("/reports", body, "tour-hard")
        took = time.monotonic() - started
        job = reply["job"]
        if farm:
            await self.expect_dead_letter(job["job_id"], "hard_timeout")
            runs = await self.runs_until(job["job_id"], bool, "the blocking report to start")
            self.show(runs, "tour-hard", _TOUR_USER)
            self.say(
                "   The run's record stops where the supervisor killed its worker process "
                "(and started another)."
            )
            return
        runs = await self.runs_until(job["job_id"], _ended, "the blocking report to end")
        self.show(runs, "tour-hard", _TOUR_USER)
        self.say(
            f"   The request took {took:.1f}s and queue() returned outcome {job['outcome']}: "
            "nothing could stop\n   the job, and this whole process waited for it. The sync "
            "driver does not enforce hard\n   timeouts (ending the process would end your "
            "app); on the farm, the supervisor kills\n   the worker at the hard timeout and "
            "the job is dead-lettered as hard_timeout."
        )
        self.expect(job["outcome"] == "succeeded", "the render ran to its end")
        self.expect(took > reply["soft_timeout_s"], "the request waited past the soft timeout")

    async def flaky_order(self, farm: bool) -> None:
        """Retries with backoff until the flaky partner answers."""
        self.say(
            f"5. An order: the warehouse API fails until attempt {WAREHOUSE_SUCCEEDS_ON_ATTEMPT}; "
            "the job is queued\n   with __retries=3 and retried with exponential, jittered backoff."
        )
        reply = await self.post("/orders", {"sku": "book-42"}, "tour-order")
        runs = await self.runs_until(
            reply["job"]["job_id"],
            lambda runs: any(run["status"] == "succeeded" for run in runs),
            "the order job to succeed",
        )
        self.show(runs, "tour-order", _TOUR_USER)
        statuses = [(run["attempt"], run["status"]) for run in runs]
        expected = [(a, "failed") for a in range(1, WAREHOUSE_SUCCEEDS_ON_ATTEMPT)]
        self.expect(
            statuses == [*expected, (WAREHOUSE_SUCCEEDS_ON_ATTEMPT, "succeeded")],
            f"failures, then success on attempt {WAREHOUSE_SUCCEEDS_ON_ATTEMPT}",
        )

    async def failing_invoice(self, farm: bool) -> None:
        """A job that always fails ends in the dead-letter queue."""
        self.say("6. An invoice: the accounting system always refuses it; after __retries=2")
        self.say("   the job has failed for good (on the farm: into the dead-letter queue).")
        reply = await self.post("/invoices", {"customer": "ACME Corp"}, "tour-invoice")
        job = reply["job"]
        attempts = 1 + reply["retries"]
        runs = await self.runs_until(
            job["job_id"],
            lambda runs: len(runs) == attempts and _ended(runs),
            f"{attempts} failed runs of the invoice job",
        )
        self.show(runs, "tour-invoice", _TOUR_USER)
        self.expect(all(run["status"] == "failed" for run in runs), "every run failed")
        if farm:
            await self.expect_dead_letter(job["job_id"], "failed")
        else:
            self.say(
                f"   queue() returned outcome {job['outcome']}: the sync driver has no dead-letter "
                "queue;\n   the failure is logged (logger fast_app.queue). On the farm it would "
                "be in `fast-app dlq list`."
            )
            self.expect(job["outcome"] == "failed", "outcome failed")

    async def bulk_thumbnails(self, farm: bool) -> None:
        """Many jobs at once."""
        self.say(f"7. Bulk: {_THUMBNAILS} thumbnail jobs (20-50 ms each) queued at once.")
        reply = await self.post("/thumbnails", {"count": _THUMBNAILS}, "tour-bulk")
        self.say(f"   queued {reply['enqueued']} jobs in {reply['enqueue_seconds']:.3f}s")
        deadline = time.monotonic() + self.wait_s
        done = 0
        while time.monotonic() < deadline:
            done = (await self.client.get(reply["follow"])).json()["done"]
            if done == _THUMBNAILS:
                break
            await asyncio.sleep(self.poll_s)
        self.say(f"   thumbnails written: {done}/{_THUMBNAILS}")
        self.expect(done == _THUMBNAILS, f"{_THUMBNAILS} thumbnails written")

    async def queues_apart(self, farm: bool) -> None:
        """Emails and reports on queues of their own: a burst of reports delays no email."""
        emails, reports = self.queues["emails"], self.queues["reports"]
        count = _BURST_REPORTS_FARM if farm else _BURST_REPORTS_SYNC
        seconds_each = _BURST_SECTIONS * REPORT_SECTION_S
        self.say(
            f"8. Queues: welcome emails go to {emails} (QUEUE_ROUTES routes them), reports to"
            f"\n   {reports} (the report endpoints name it: __queue=), the rest to "
            f"{self.queues['default']}.\n   A burst of {count} reports of {seconds_each:g}s "
            "each, then a sign-up: its welcome email does not\n   wait behind the reports."
        )
        started = time.monotonic()
        body = {"count": count, "sections": _BURST_SECTIONS}
        batch = await self.post("/reports/batch", body, "tour-burst")
        took = time.monotonic() - started
        self.say(f"   queued {batch['enqueued']} reports on {batch['queue']}")
        self.expect(batch["queue"] == reports, f"the reports went to {reports}")
        reply = await self.post("/signup", {"email": "grace@example.com"}, "tour-queues")
        job = reply["job"]
        self.say(f"   the welcome email went to {job['queue']}")
        self.expect(job["queue"] == emails, f"the welcome email went to {emails}")
        runs = await self.runs_until(job["job_id"], _ended, "the welcome email to end")
        self.show(runs, "tour-queues", reply["user_id"])
        done = (await self.client.get(batch["follow"])).json()["done"]
        if not farm:
            self.say(
                f"   With the sync driver the burst ran inside its request ({took:.1f}s; "
                f"reports written: {done}/{count}),\n   but each job knows its queue: on the "
                f"farm, {emails} and {reports} each have a pool of workers."
            )
            self.expect(done == count, f"{count} reports written")
            return
        first = runs[0] if runs else None
        waited = (
            first["started_at"] - first["enqueued_at"]
            if first is not None and first["enqueued_at"] is not None
            else None
        )
        self.say(
            f"   The email waited {_seconds(waited)} on {emails}; {count - done} of the {count} "
            f"reports were still waiting or\n   running on {reports}. Each queue has a pool of "
            "workers of its own (fast-app work --queues);\n   `uv run fast-app status` shows "
            "each queue's workers, backlog, wait and time to clear."
        )
        self.expect(
            waited is not None and waited < _EMAIL_WAIT_LIMIT_S,
            f"the welcome email started within {_EMAIL_WAIT_LIMIT_S:g}s of its sign-up",
        )


def _seconds(value: float | None) -> str:
    if value is None:
        return "an unknown time"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f}s"


async def run_tour(url: str | None = None, out: TextIO = sys.stdout) -> int:
    """Take the tour of the demo at ``url``, or of one served in this process.

    Returns:
        0 when every job did what it should, 1 otherwise.
    """
    if url is not None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            try:
                await client.get("/")
            except httpx.TransportError as error:
                print(
                    f"demo tour: cannot reach {url} ({error}): is `uv run demo` running?", file=out
                )
                return 1
            return await Tour(client, out, None).run()
    spans = InMemorySpanExporter()
    # The tour prints each request's trace itself: spans are exported elsewhere only
    # when the OTEL_* variables ask for it.
    telemetry.configure_telemetry(
        telemetry.API_SERVICE, default_exporters=(), extra_exporters=[spans]
    )
    from fast_app_demo.app import create_app  # after telemetry: see fast_app_demo.jobs

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo.in-process") as client,
    ):
        with _queue_log_shown(out):
            return await Tour(client, out, spans).run()
