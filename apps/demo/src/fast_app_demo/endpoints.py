"""The endpoints that queue jobs: one per kind of job the demo shows."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, status

from fast_app.core.context import context
from fast_app.core.queue import Job, queue
from fast_app_demo import job_options as options
from fast_app_demo import jobs
from fast_app_demo.context_keys import USER_ID
from fast_app_demo.schemas import (
    InvoiceIn,
    InvoiceOut,
    JobTicket,
    OrderIn,
    OrderOut,
    ReportIn,
    ReportOut,
    SignupIn,
    SignupOut,
    ThumbnailBatchIn,
    ThumbnailBatchOut,
)
from fast_app_demo.settings import get_settings
from fast_app_demo.users import UserStore

__all__ = ["router"]

router = APIRouter(tags=["jobs"])


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def ticket(job: Job) -> JobTicket:
    """What a response says about a job it queued."""
    outcome = job.outcome
    return JobTicket(
        job_id=job.id,
        function=job.function.rpartition(".")[2],
        driver=job.driver,
        outcome=None if outcome is None else outcome.status.value,
        still_running=bool(outcome and outcome.still_running),
        error=None if outcome is None or outcome.error is None else outcome.error.message,
        follow=f"/jobs/{job.id}",
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: SignupIn) -> SignupOut:
    """Create a user and queue their welcome email.

    The new user's id joins the request id in the context, so the job sees both.
    """
    # If queue() then fails (503), the user exists without a welcome email: a real app
    # would store the job with the user (an outbox table) or tell the client to retry.
    user = UserStore(get_settings().data_dir).create(body.email, body.name)
    context.set(USER_ID, user.id)
    job = await queue(jobs.send_welcome_email, user.id)
    return SignupOut(user_id=user.id, job=ticket(job))


@router.post("/reports", status_code=status.HTTP_202_ACCEPTED)
async def create_report(body: ReportIn) -> ReportOut:
    """Queue a report with soft and hard timeouts; over 10 sections, it overruns them."""
    report_id = _new_id("rpt")
    function = jobs.generate_report if body.renderer == "async" else jobs.render_report_pdf
    job = await queue(
        function,
        report_id,
        body.title,
        body.sections,
        __soft_timeout_s=options.REPORT_SOFT_TIMEOUT_S,
        __hard_timeout_s=options.REPORT_HARD_TIMEOUT_S,
    )
    return ReportOut(
        report_id=report_id,
        soft_timeout_s=options.REPORT_SOFT_TIMEOUT_S,
        hard_timeout_s=options.REPORT_HARD_TIMEOUT_S,
        job=ticket(job),
    )


@router.post("/orders", status_code=status.HTTP_202_ACCEPTED)
async def create_order(body: OrderIn) -> OrderOut:
    """Queue the warehouse notification of an order: it fails twice, then succeeds."""
    order_id = _new_id("ord")
    job = await queue(
        jobs.notify_warehouse,
        order_id,
        body.sku,
        body.quantity,
        __retries=options.WAREHOUSE_RETRIES,
    )
    return OrderOut(order_id=order_id, retries=options.WAREHOUSE_RETRIES, job=ticket(job))


@router.post("/invoices", status_code=status.HTTP_202_ACCEPTED)
async def create_invoice(body: InvoiceIn) -> InvoiceOut:
    """Queue the export of an invoice: it always fails, and ends in the dead-letter queue."""
    invoice_id = _new_id("inv")
    job = await queue(
        jobs.export_invoice,
        invoice_id,
        body.customer,
        body.amount_eur,
        __retries=options.INVOICE_RETRIES,
    )
    return InvoiceOut(invoice_id=invoice_id, retries=options.INVOICE_RETRIES, job=ticket(job))


@router.post("/thumbnails", status_code=status.HTTP_202_ACCEPTED)
async def create_thumbnails(body: ThumbnailBatchIn) -> ThumbnailBatchOut:
    """Queue many thumbnail jobs at once: watch the farm scale (``fast-app work --tui``)."""
    batch_id = _new_id("bat")
    started = time.perf_counter()
    # All at once: with async_farm the publisher pipelines the broker's confirms, so a
    # thousand jobs take about as many round trips as a few.
    queued = await asyncio.gather(
        *(queue(jobs.make_thumbnail, f"img_{index:05d}", batch_id) for index in range(body.count))
    )
    return ThumbnailBatchOut(
        batch_id=batch_id,
        enqueued=len(queued),
        enqueue_seconds=round(time.perf_counter() - started, 3),
        driver=queued[0].driver,
        follow=f"/thumbnails/{batch_id}",
    )
