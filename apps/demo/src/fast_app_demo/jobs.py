"""The demo's jobs: plain module-level functions, which workers import by dotted path.

Each records its run (``activity.journal``) so that the web app, the tour and the tests
can see what it did, with which context, on which attempt and in which process; and
makes a span of its own, a child of the queue's ``process`` span.

Farm workers import this module (``fast-app work --imports fast_app_demo.jobs``) and
nothing else of the demo, so importing it sets up the demo's telemetry in the process,
unless something did already: the demo's own entry points do, before they import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator

from opentelemetry import trace

from fast_app.core.context import context
from fast_app.core.queue import current_job
from fast_app_demo import telemetry
from fast_app_demo.activity import RunJournal, journal
from fast_app_demo.context_keys import REQUEST_ID
from fast_app_demo.emails import render_welcome_email
from fast_app_demo.errors import InvoiceRejectedError, WarehouseUnavailableError
from fast_app_demo.job_options import REPORT_SECTION_S, WAREHOUSE_SUCCEEDS_ON_ATTEMPT
from fast_app_demo.settings import get_settings
from fast_app_demo.users import UserStore

__all__ = [
    "export_invoice",
    "generate_report",
    "make_thumbnail",
    "notify_warehouse",
    "render_report_pdf",
    "send_welcome_email",
]

_tracer = trace.get_tracer("fast_app_demo.jobs")

telemetry.configure_telemetry(telemetry.WORKER_SERVICE)


@contextlib.contextmanager
def _recorded(function: str, span_name: str) -> Iterator[tuple[RunJournal, trace.Span]]:
    """The job's journal, and a span for its work inside the ``process`` span."""
    with (
        journal(function, get_settings().data_dir) as run,
        _tracer.start_as_current_span(span_name) as span,
    ):
        yield run, span


def _job_id() -> str:
    job = current_job()
    return job.id if job else "direct"


async def send_welcome_email(user_id: str) -> None:
    """Render the welcome email of a new user into the outbox."""
    with _recorded("send_welcome_email", "render welcome email") as (run, _):
        data_dir = get_settings().data_dir
        user = UserStore(data_dir).get(user_id)
        run.step(f"loaded user {user.id} <{user.email}>")
        path = data_dir / "outbox" / f"{_job_id()}.eml"
        # Jobs run at least once: a redelivered job finds its email already written.
        if path.exists():
            run.step("already in the outbox (an earlier delivery): not sent twice")
        else:
            message = render_welcome_email(
                user, request_id=context.get(REQUEST_ID), job_id=_job_id()
            )
            await asyncio.sleep(0.02)  # the SMTP round trip
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(message)
            run.step(f"email written to {path}")
        run.produced(email=str(path))


async def generate_report(report_id: str, title: str, sections: int) -> None:
    """Build a report section by section; big ones overrun the soft timeout.

    An ``async def``: at the soft timeout its task is cancelled at the next ``await``,
    and the journal records the cancellation.
    """
    with _recorded("generate_report", "build report") as (run, span):
        span.set_attribute("demo.report.sections", sections)
        for section in range(1, sections + 1):
            await asyncio.sleep(REPORT_SECTION_S)  # a database query per section
            run.step(f"section {section}/{sections}")
        run.produced(report=_write_report(report_id, title, sections, renderer="async"))


async def render_report_pdf(report_id: str, title: str, sections: int) -> None:
    """Render a report with a (pretend) PDF library called straight from ``async def``.

    The library blocks, so the event loop stops: the soft timeout cannot even fire. On a
    worker its heartbeats stop too, and the supervisor kills the worker at the hard
    timeout; the worker the job is redelivered to dead-letters it as ``hard_timeout``.
    The sync driver ignores hard timeouts (ending the process would end your app): the
    whole web process waits for the render to end.
    """
    with _recorded("render_report_pdf", "render report pdf") as (run, span):
        span.set_attribute("demo.report.sections", sections)
        for section in range(1, sections + 1):
            # A blocking call in async code, on purpose: the mistake this job shows.
            time.sleep(REPORT_SECTION_S)  # noqa: ASYNC251
            run.step(f"page {section}/{sections}")
        run.produced(report=_write_report(report_id, title, sections, renderer="blocking"))


def _write_report(report_id: str, title: str, sections: int, *, renderer: str) -> str:
    path = get_settings().data_dir / "reports" / f"{report_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"id": report_id, "title": title, "sections": sections, "renderer": renderer}
    path.write_text(json.dumps(report), encoding="utf-8")
    return str(path)


async def notify_warehouse(order_id: str, sku: str, quantity: int) -> None:
    """Tell the warehouse to ship an order; its API fails on the first attempts."""
    job = current_job()
    attempt = job.attempt if job else WAREHOUSE_SUCCEEDS_ON_ATTEMPT
    with _recorded("notify_warehouse", "call warehouse api") as (run, span):
        span.set_attribute("demo.order.id", order_id)
        await asyncio.sleep(0.01)
        if attempt < WAREHOUSE_SUCCEEDS_ON_ATTEMPT:
            raise WarehouseUnavailableError(
                f"warehouse API answered 503 for order {order_id} (attempt {attempt})"
            )
        run.step(f"warehouse accepted {quantity} x {sku} (order {order_id}), attempt {attempt}")
        run.produced(order_id=order_id, accepted_on_attempt=attempt)


async def export_invoice(invoice_id: str, customer: str, amount_eur: float) -> None:
    """Send an invoice to the accounting system, which always refuses it."""
    job = current_job()
    with _recorded("export_invoice", "call accounting api") as (run, span):
        span.set_attribute("demo.invoice.id", invoice_id)
        await asyncio.sleep(0.01)
        if job is not None and job.is_last_attempt:
            run.step("last attempt: if it fails, the job goes to the dead-letter queue")
        raise InvoiceRejectedError(
            f"accounting refused invoice {invoice_id} ({amount_eur:.2f} EUR): the account of "
            f"{customer} is closed"
        )


def make_thumbnail(image_id: str, batch_id: str) -> None:
    """Make one thumbnail (20-50 ms); the bulk endpoint queues many at once.

    It writes its output but keeps no journal: a bulk of ten thousand runs would bury
    the interesting ones. A batch's progress is the number of thumbnails written.
    """
    digest = hashlib.sha256(image_id.encode()).digest()
    time.sleep(0.02 + digest[0] / 255 * 0.03)  # an image library call, GIL released
    path = get_settings().data_dir / "thumbnails" / batch_id / f"{image_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    thumbnail = {"image_id": image_id, "size": [128, 128], "request_id": context.get(REQUEST_ID)}
    path.write_text(json.dumps(thumbnail), encoding="utf-8")
