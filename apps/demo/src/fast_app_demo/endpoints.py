"""The endpoints that queue jobs: one per kind of job the demo shows."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, status

from fast_app.core.context import context
from fast_app.core.queue import Job, queue
from fast_app.core.queue import get_settings as get_queue_settings
from fast_app_demo import job_options as options
from fast_app_demo import jobs
from fast_app_demo.context_keys import USER_ID
from fast_app_demo.schemas import (
    InvoiceIn,
    InvoiceOut,
    JobTicket,
    OrderIn,
    OrderOut,
    ReportBatchIn,
    ReportBatchOut,
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
        queue=job.queue or get_queue_settings().name,
        outcome=None if outcome is None else outcome.status.value,
        still_running=bool(outcome and outcome.still_running),
        error=None if outcome is None or outcome.error is None else outcome.error.message,
        follow=f"/jobs/{job.id}",
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: SignupIn) -> SignupOut:
    """Create a user and queue their welcome email.

    The new user's id joins the request id in the context, so the job sees both. The
    call names no queue: ``QUEUE_ROUTES`` sends the job to ``emails``.
    """
    # If queue() then fails (503), the user exists without a welcome email: a real app
    # would store the job with the user (an outbox table) or tell the client to retry.
    user = UserStore(get_settings().data_dir).create(body.email, body.name)
    context.set(USER_ID, user.id)
    job = await queue(jobs.send_welcome_email, user.id)
    return SignupOut(user_id=user.id, job=ticket(job))


async def _queue_report(
    report_id: str,
    title: str,
    sections: int,
    *,
    blocking: bool = False,
    soft_timeout_s: float,
    hard_timeout_s: float,
) -> Job:
    """Queue a report on the reports queue, named here: a report is slow, whoever asks."""
    function = jobs.render_report_pdf if blocking else jobs.generate_report
    return await queue(
        function,
        report_id,
        title,
        sections,
        __queue=get_settings().reports_queue,
        __soft_timeout_s=soft_timeout_s,
        __hard_timeout_s=hard_timeout_s,
    )


@router.post("/reports", status_code=status.HTTP_202_ACCEPTED)
async def create_report(body: ReportIn) -> ReportOut:
    """Queue a report with soft and hard timeouts; over 10 sections, it overruns them."""
    report_id = _new_id("rpt")
    job = await _queue_report(
        report_id,
        body.title,
        body.sections,
        blocking=body.renderer == "blocking",
        soft_timeout_s=options.REPORT_SOFT_TIMEOUT_S,
        hard_timeout_s=options.REPORT_HARD_TIMEOUT_S,
    )
    return ReportOut(
        report_id=report_id,
        soft_timeout_s=options.REPORT_SOFT_TIMEOUT_S,
        hard_timeout_s=options.REPORT_HARD_TIMEOUT_S,
        job=ticket(job),
    )


@router.post("/reports/batch", status_code=status.HTTP_202_ACCEPTED)
async def create_report_batch(body: ReportBatchIn) -> ReportBatchOut:
    """Queue many reports at once, each taking seconds: a burst on the reports queue,
    while emails go through on theirs (``fast-app status`` shows both)."""
    batch_id = _new_id("rep")
    started = time.perf_counter()
    queued = await asyncio.gather(
        *(
            _queue_report(
                f"{batch_id}_{index:05d}",
                f"Monthly report {index + 1}/{body.count}",
                body.sections,
                soft_timeout_s=options.BATCH_REPORT_SOFT_TIMEOUT_S,
                hard_timeout_s=options.BATCH_REPORT_HARD_TIMEOUT_S,
            )
            for index in range(body.count)
        )
    )
    return ReportBatchOut(
        batch_id=batch_id,
        enqueued=len(queued),
        queue=queued[0].queue or get_queue_settings().name,
        seconds_each=round(body.sections * options.REPORT_SECTION_S, 3),
        enqueue_seconds=round(time.perf_counter() - started, 3),
        driver=queued[0].driver,
        follow=f"/reports/batch/{batch_id}",
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
