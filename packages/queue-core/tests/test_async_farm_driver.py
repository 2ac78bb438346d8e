"""``queue()`` with ``QUEUE_DRIVER=async_farm``: from the call to the message a worker reads."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import queue_core_jobs as jobs
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from queue_core_broker import Broker

from fast_app.core.context import context
from fast_app.core.queue import close, queue
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import signature_matches
from fast_app.core.queue.telemetry import use_providers
from fast_app.core.queue.worker_side import decode_envelope

pytestmark = pytest.mark.rabbitmq

SIGNING_KEY = secrets.token_hex(32)


@pytest.fixture
async def async_farm(
    monkeypatch: pytest.MonkeyPatch, rabbitmq_url: str, queue_name: str
) -> AsyncIterator[None]:
    """``queue()`` set up from the environment, as an application would be."""
    monkeypatch.setenv("QUEUE_DRIVER", "async_farm")
    monkeypatch.setenv("RABBITMQ_URL", rabbitmq_url)
    monkeypatch.setenv("QUEUE_NAME", queue_name)
    monkeypatch.setenv("QUEUE_CONNECT_TIMEOUT_S", "10")
    monkeypatch.setenv("ASYNC_FARM_SIGNING_KEY", SIGNING_KEY)
    try:
        yield
    finally:
        await close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An OpenTelemetry SDK for the queue, recording spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_providers(tracer_provider=provider)
    try:
        yield exporter
    finally:
        use_providers()
        provider.shutdown()


@pytest.mark.usefixtures("async_farm")
async def test_queue_publishes_a_signed_job_with_its_context_and_trace(
    broker: Broker, queue_name: str, spans: InMemorySpanExporter
) -> None:
    # Given a request's context and a tracing SDK
    context.set("request_id", "req-42")

    # When the application queues a job
    job = await queue(jobs.send_welcome_email, "u1", template="vip", __soft_timeout_s=30)

    # Then the broker has stored it by the time queue() returns
    assert (job.driver, job.function) == ("async_farm", "queue_core_jobs.send_welcome_email")
    assert job.outcome is None
    assert await broker.message_count(queue_name) == 1
    message = await broker.get(queue_name)
    # And a worker decodes the call, its options and the request's context from it
    envelope = decode_envelope(message.body)
    assert envelope.id == job.id == message.message_id
    assert envelope.function == "queue_core_jobs.send_welcome_email"
    assert (envelope.args, envelope.kwargs) == (["u1"], {"template": "vip"})
    assert envelope.options.soft_timeout_s == 30
    assert envelope.context["request_id"] == "req-42"
    assert signature_matches(message.body, message.headers[h.SIGNATURE], SIGNING_KEY.encode())
    # And the headers carry the publish span's trace context to the worker
    [publish] = [
        span for span in spans.get_finished_spans() if span.name == f"publish {queue_name}"
    ]
    assert publish.context is not None
    _version, trace_id, parent_id, _flags = message.headers["traceparent"].split("-")
    assert (trace_id, parent_id) == (
        f"{publish.context.trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )


@pytest.mark.usefixtures("async_farm")
async def test_without_a_tracing_sdk_a_job_carries_no_trace_headers(
    broker: Broker, queue_name: str
) -> None:
    job = await queue(jobs.record, "untraced")

    message = await broker.get(queue_name)
    assert message.message_id == job.id
    assert "traceparent" not in message.headers


@pytest.mark.usefixtures("async_farm")
async def test_a_job_for_a_named_queue_is_stored_in_that_queue_and_its_delays(
    broker: Broker, queue_name: str
) -> None:
    # Given a named queue beside the default one
    reports = f"{queue_name}.reports"

    # When one job goes to it at once and another after a delay
    now = await queue(jobs.record, 1, __queue=reports)
    later = await queue(jobs.record, 2, __queue=reports, __delay_s=1)

    # Then the first waits in the named queue, the second in that queue's delay level,
    # and the default queue holds neither
    assert (now.queue, later.queue) == (reports, reports)
    assert await broker.message_count(reports) == 1
    assert decode_envelope((await broker.get(reports)).body).id == now.id
    assert await broker.message_count(f"{reports}.delay.800ms") == 1
    assert await broker.message_count(queue_name) == 0
    # And once its delay is over it comes back to the named queue, not the default one
    delayed = await broker.get(reports, timeout=10)
    assert decode_envelope(delayed.body).id == later.id
    assert await broker.message_count(queue_name) == 0
