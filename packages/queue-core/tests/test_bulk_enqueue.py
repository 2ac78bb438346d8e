"""``queue_many()``: a batch of jobs, validated as ``queue()`` does, each reported in its slot.

The sync driver runs the jobs in order; ``async_farm`` publishes them with pipelined
confirms (real broker).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import queue_core_jobs as jobs
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from queue_core_broker import Broker, connections_named, poll, rabbitmqctl

from fast_app.core.context import context
from fast_app.core.queue import (
    BatchError,
    Job,
    JobValidationError,
    QueueUnavailableError,
    close,
    job_call,
    queue_many,
)
from fast_app.core.queue.amqp import _batch_publishing
from fast_app.core.queue.hooks import Enqueueing, Hook, add_hook, remove_hook
from fast_app.core.queue.telemetry import use_providers
from fast_app.core.queue.testing import JobRecorder
from fast_app.core.queue.testing.rabbitmq import RabbitMQNode
from fast_app.core.queue.worker_side import decode_envelope


class EnqueueEvents(Hook):
    """Counts the enqueue events, with each job's outcome."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def before_enqueue(self, call: Enqueueing) -> None:
        self.events.append(("before_enqueue", call.in_batch))

    def job_prepared(self, call: Enqueueing, headers: dict[str, str]) -> None:
        assert call.envelope is not None
        self.events.append(("job_prepared", call.envelope.id))

    def after_enqueue(self, call: Enqueueing, job: Job | None, error: BaseException | None) -> None:
        self.events.append(("after_enqueue", job.id if job else type(error).__name__))


@pytest.fixture
def events() -> Iterator[EnqueueEvents]:
    hook = EnqueueEvents()
    add_hook(hook)
    yield hook
    remove_hook(hook)


# -- sync driver ------------------------------------------------------------------------


async def test_an_empty_batch_returns_an_empty_result() -> None:
    result = await queue_many([])

    assert (len(result), result.ok, result.jobs, result.failures) == (0, True, [], [])


async def test_the_sync_driver_runs_the_batch_in_order_with_the_callers_context() -> None:
    # Given a request's context
    context.set("request_id", "req-7")

    # When a batch is queued
    result = await queue_many(job_call(jobs.record, n) for n in range(5))

    # Then each job ran, in order, before queue_many returned, with its handle in its slot
    assert result.ok
    assert [call["args"] for call in jobs.calls] == [(n,) for n in range(5)]
    assert [job.driver for job in result.jobs] == ["sync"] * 5
    assert all(job.outcome is not None and job.outcome.succeeded for job in result.jobs)
    # And each job saw the context of the call
    assert [call["context"] for call in jobs.calls] == [{"request_id": "req-7"}] * 5


async def test_the_context_is_captured_once_for_the_batch() -> None:
    # Given a batch whose first job changes its own context
    context.set("request_id", "req-8")

    await queue_many([job_call(jobs.change_context_then_record), job_call(jobs.record, 2)])

    # Then the next job still sees the caller's context, not the first job's
    assert jobs.calls[0]["context"] == {"request_id": "req-8", "set_by_job": True}
    assert jobs.calls[1]["context"] == {"request_id": "req-8"}


async def test_a_call_that_fails_validation_is_reported_in_its_slot_and_the_rest_run(
    events: EnqueueEvents,
) -> None:
    # When one call of three does not bind to its function's signature
    result = await queue_many(
        [
            job_call(jobs.record, "first"),
            job_call(jobs.three_args, 1),
            job_call(jobs.record, "third", __delay_s=0),
        ]
    )

    # Then its slot holds the error, and the other two ran
    first, failed, third = result
    assert isinstance(first, Job) and isinstance(third, Job)
    assert isinstance(failed, JobValidationError)
    assert "three_args" in str(failed)
    assert [call["args"] for call in jobs.calls] == [("first",), ("third",)]
    assert result.jobs == [first, third]
    assert result.failures == [(1, failed)]
    assert not result.ok
    # And raise_failures names it
    with pytest.raises(BatchError, match=r"1 of 3 jobs were not enqueued: \[1\]") as raised:
        result.raise_failures()
    assert raised.value.failures == [(1, failed)]
    # And every job had its own enqueue events, marked as part of a batch
    names = [name for name, _ in events.events]
    assert names.count("before_enqueue") == names.count("after_enqueue") == 3
    assert all(in_batch for name, in_batch in events.events if name == "before_enqueue")
    assert ("after_enqueue", "JobValidationError") in events.events


async def test_queue_sync_raise_stops_the_batch_at_the_failing_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUE_SYNC_RAISE", "1")

    with pytest.raises(ValueError, match="boom"):
        await queue_many([job_call(jobs.fail, "boom"), job_call(jobs.record, "after")])

    assert jobs.calls == []


async def test_the_job_recorder_records_a_batch() -> None:
    with JobRecorder().capture() as recorder:
        result = await queue_many([job_call(jobs.record, 1), job_call(jobs.record, 2)])

    assert [job.args for job in recorder.jobs] == [(1,), (2,)]
    assert [job.id for job in result.jobs] == [job.id for job in recorder.jobs]


# -- async_farm driver ------------------------------------------------------------------


@pytest.fixture
async def async_farm(
    monkeypatch: pytest.MonkeyPatch, rabbitmq_url: str, queue_name: str
) -> AsyncIterator[None]:
    monkeypatch.setenv("QUEUE_DRIVER", "async_farm")
    monkeypatch.setenv("RABBITMQ_URL", rabbitmq_url)
    monkeypatch.setenv("QUEUE_NAME", queue_name)
    monkeypatch.setenv("QUEUE_CONNECT_TIMEOUT_S", "10")
    try:
        yield
    finally:
        await close()


async def drain(broker: Broker, queue_name: str, count: int) -> list[Any]:
    """The envelopes of the ``count`` messages in ``queue_name``, in queue order."""
    assert await broker.message_count(queue_name) == count
    return [decode_envelope((await broker.get(queue_name)).body) for _ in range(count)]


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_a_batch_is_stored_in_order_with_each_jobs_handle_and_the_context(
    broker: Broker, queue_name: str
) -> None:
    # Given a request's context
    context.set("request_id", "req-42")

    # When a batch is queued
    result = await queue_many(job_call(jobs.record, n, tag="x") for n in range(10))

    # Then every job is stored by the time it returns, in order, each under its handle's id
    assert result.ok
    envelopes = await drain(broker, queue_name, 10)
    assert [envelope.id for envelope in envelopes] == [job.id for job in result.jobs]
    assert [envelope.args for envelope in envelopes] == [[n] for n in range(10)]
    assert {(job.driver, job.queue) for job in result.jobs} == {("async_farm", queue_name)}
    # And each carries the caller's context
    assert all(envelope.context == {"request_id": "req-42"} for envelope in envelopes)


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_a_call_that_fails_validation_leaves_the_others_published(
    broker: Broker, queue_name: str, events: EnqueueEvents
) -> None:
    result = await queue_many(
        [
            job_call(jobs.record, 1),
            job_call(lambda: None),
            job_call(jobs.record, 3, __retries=101),
            job_call(jobs.record, 4),
        ]
    )

    ok_first, lambda_error, retries_error, ok_last = result
    assert isinstance(lambda_error, JobValidationError)
    assert "lambda" in str(lambda_error)
    assert isinstance(retries_error, JobValidationError)
    assert "__retries" in str(retries_error)
    assert isinstance(ok_first, Job) and isinstance(ok_last, Job)
    envelopes = await drain(broker, queue_name, 2)
    assert [envelope.id for envelope in envelopes] == [ok_first.id, ok_last.id]
    # And each job had its own events; the failed ones end with their error
    after = [outcome for name, outcome in events.events if name == "after_enqueue"]
    assert sorted(map(str, after)) == sorted(
        [ok_first.id, ok_last.id, "JobValidationError", "JobValidationError"]
    )


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_jobs_of_one_batch_go_to_their_own_queues_and_delay_levels(
    broker: Broker, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a route for one function, beside the default queue and a named one
    routed = f"{queue_name}.emails"
    reports = f"{queue_name}.reports"
    monkeypatch.setenv("QUEUE_ROUTES", f"queue_core_jobs.send_welcome_email={routed}")

    # When one batch holds a job for each, and delayed ones
    result = await queue_many(
        [
            job_call(jobs.record, "default"),
            job_call(jobs.send_welcome_email, "u1"),
            job_call(jobs.record, "named", __queue=reports),
            job_call(jobs.record, "later", __delay_s=4),
            job_call(jobs.record, "named later", __queue=reports, __delay_s=4),
        ]
    )

    # Then each is where its call sent it: the delayed ones at their level (3.2 s: read
    # first, while they surely are still there on a busy host)
    assert result.ok
    assert await broker.message_count(f"{queue_name}.delay.3200ms") == 1
    assert await broker.message_count(f"{reports}.delay.3200ms") == 1
    default, emailed, named, later, named_later = result.jobs
    assert [job.queue for job in result.jobs] == [queue_name, routed, reports, queue_name, reports]
    assert [e.id for e in await drain(broker, routed, 1)] == [emailed.id]
    assert [e.id for e in await drain(broker, reports, 1)] == [named.id]
    assert [e.id for e in await drain(broker, queue_name, 1)] == [default.id]
    # And the delayed ones come back to their own queues once due
    assert decode_envelope((await broker.get(queue_name, timeout=10)).body).id == later.id
    assert decode_envelope((await broker.get(reports, timeout=10)).body).id == named_later.id


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
@pytest.mark.parametrize("window", [7, 1000])
async def test_a_batch_larger_than_the_confirm_window_is_stored_whole_and_in_order(
    broker: Broker, queue_name: str, window: int
) -> None:
    count = 2500

    result = await queue_many((job_call(jobs.record, n) for n in range(count)), window=window)

    assert result.ok and len(result.jobs) == count
    envelopes = await drain(broker, queue_name, count)
    assert [envelope.id for envelope in envelopes] == [job.id for job in result.jobs]


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_without_the_channel_state_it_frames_with_the_batch_falls_back_to_basic_publish(
    broker: Broker, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an aiormq without the channel attributes the one-write path uses
    monkeypatch.setattr(_batch_publishing, "can_frame", lambda channel: False)

    result = await queue_many((job_call(jobs.record, n) for n in range(30)), window=8)

    assert result.ok
    envelopes = await drain(broker, queue_name, 30)
    assert [envelope.id for envelope in envelopes] == [job.id for job in result.jobs]


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_a_job_the_broker_refuses_is_reported_in_its_slot_and_the_others_are_stored(
    broker: Broker, private_node: RabbitMQNode, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a named queue that refuses (nacks) new messages: over a length limit with
    # reject-publish (a quorum queue refuses once it holds more than the limit), and a
    # short bound (a nacked job is published again until it runs out)
    monkeypatch.setenv("QUEUE_CONNECT_TIMEOUT_S", "1")
    full = f"{queue_name}.full"
    [stored] = (await queue_many([job_call(jobs.record, "stored", __queue=full)])).jobs
    policy = f"full-{queue_name}"
    await rabbitmqctl(
        private_node,
        "set_policy",
        "--apply-to",
        "queues",
        policy,
        f"^{re.escape(full)}$",
        '{"max-length": 0, "overflow": "reject-publish"}',
    )
    try:
        # When a batch has a job for it between jobs for the default queue
        result = await queue_many(
            [
                job_call(jobs.record, 1),
                job_call(jobs.record, "refused", __queue=full),
                job_call(jobs.record, 3),
            ]
        )
    finally:
        await rabbitmqctl(private_node, "clear_policy", policy)

    # Then that job's slot says the broker did not take it, and the others are stored
    first, refused, third = result
    assert isinstance(refused, QueueUnavailableError)
    assert "Nack" in str(refused)
    assert isinstance(first, Job) and isinstance(third, Job)
    assert [e.id for e in await drain(broker, queue_name, 2)] == [first.id, third.id]
    assert [e.id for e in await drain(broker, full, 1)] == [stored.id]


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_each_job_of_a_batch_has_its_own_publish_span(
    broker: Broker, queue_name: str
) -> None:
    # Given a tracing SDK and a span around the batch
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_providers(tracer_provider=provider)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request_span:
            result = await queue_many(job_call(jobs.record, n) for n in range(3))
    finally:
        use_providers()
        provider.shutdown()

    # Then each job has a publish span, all children of the caller's span (siblings)
    publishes = [s for s in exporter.get_finished_spans() if s.name == f"publish {queue_name}"]
    assert len(publishes) == 3
    request_id = request_span.get_span_context().span_id
    assert all(span.parent is not None and span.parent.span_id == request_id for span in publishes)
    # And each message carries its own span's context
    by_span = {f"{span.context.span_id:016x}" for span in publishes if span.context}
    messages = [await broker.get(queue_name) for _ in range(3)]
    assert {m.headers["traceparent"].split("-")[2] for m in messages} == by_span
    assert [m.message_id for m in messages] == [job.id for job in result.jobs]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word (a hung broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize("where", ["closed port", "hung broker"])
async def test_an_unreachable_broker_fails_the_batch_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
    silent_port: int,
    queue_name: str,
    events: EnqueueEvents,
    where: str,
) -> None:
    # Given a broker that refuses connections, or accepts and never answers
    port = _closed_port() if where == "closed port" else silent_port
    monkeypatch.setenv("QUEUE_DRIVER", "async_farm")
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://app:secret-pw@127.0.0.1:{port}/")
    monkeypatch.setenv("QUEUE_NAME", queue_name)
    monkeypatch.setenv("QUEUE_CONNECT_TIMEOUT_S", "1")
    started = time.monotonic()

    # When a batch is queued
    try:
        with pytest.raises(QueueUnavailableError, match="a batch of 3 jobs") as raised:
            await queue_many(job_call(jobs.record, n) for n in range(3))
    finally:
        await close()

    # Then it raises within the bound, naming the broker but not the password
    assert time.monotonic() - started < 1.25 * 1.0 + 0.5
    assert f"amqp://app:***@127.0.0.1:{port}/" in str(raised.value)
    assert "secret-pw" not in str(raised.value)
    # And every job's enqueue ended with that error
    after = [outcome for name, outcome in events.events if name == "after_enqueue"]
    assert after == ["QueueUnavailableError"] * 3


async def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        await queue_many([job_call(jobs.record, 1)], window=0)

    assert jobs.calls == []


@pytest.mark.rabbitmq
@pytest.mark.usefixtures("async_farm")
async def test_a_connection_lost_mid_batch_is_opened_again_and_the_whole_batch_stored(
    broker: Broker, private_node: RabbitMQNode, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch of 5 windows whose connection the broker closes once 2 are sent
    sent: list[int] = []
    lost_at: list[float] = []
    send_window = _batch_publishing.BatchPublisher._send_window

    async def send_then_lose_the_connection(self: Any, outgoing: Any) -> Any:
        window = await send_window(self, outgoing)
        sent.append(len(outgoing))
        if len(sent) == 2:
            for connection in await connections_named(private_node, "fast-app publisher"):
                await rabbitmqctl(private_node, "close_connection", connection, "by the test")
            await poll(
                lambda: _closed(self._link), message="the publisher to see its connection closed"
            )
            lost_at.append(time.monotonic())
        return window

    monkeypatch.setattr(
        _batch_publishing.BatchPublisher, "_send_window", send_then_lose_the_connection
    )

    # When it is queued
    result = await queue_many((job_call(jobs.record, n) for n in range(50)), window=10)

    # Then it returns soon after (not after QUEUE_CONNECT_TIMEOUT_S), every job enqueued:
    # the jobs in flight at the break and the unsent ones went out on a new connection
    [lost] = lost_at
    assert time.monotonic() - lost < 2
    assert result.ok and len(result.jobs) == 50
    assert sum(sent) >= 50
    # And every job is stored, at least once (one in flight at the break may be twice)
    count = await broker.message_count(queue_name)
    assert count >= 50
    stored = {envelope.id for envelope in await drain(broker, queue_name, count)}
    assert stored == {job.id for job in result.jobs}
    # And the next call publishes on the same new connection
    monkeypatch.setattr(_batch_publishing.BatchPublisher, "_send_window", send_window)
    assert (await queue_many([job_call(jobs.record, "again")])).ok


async def _closed(publisher: Any) -> bool | None:
    channel = publisher._underlay
    return True if channel is None or channel.is_closed else None


def test_the_pipelined_path_is_on_with_the_aiormq_it_was_verified_against() -> None:
    # The benchmark's figures and these tests are the fast path's only with aiormq 7.
    from fast_app.core.queue.amqp import _pipelined

    assert _pipelined._VERIFIED_AIORMQ is True
