"""OpenTelemetry, in-process: the sync driver's spans and the queue's metrics.

The SDK's providers are handed to the queue with ``use_providers`` (the global ones stay
unset, so the other tests run without telemetry), with an in-memory span exporter and
metric reader.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import queue_core_jobs as jobs
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fast_app.core.context import context
from fast_app.core.queue import JobStatus, JobValidationError, override_settings, queue
from fast_app.core.queue.telemetry import active, extract_headers, trace_headers, use_providers
from fast_app.core.queue.testing import JobRecorder


@dataclass
class Telemetry:
    """What the queue recorded during a test."""

    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.finished(name)
        return span

    def points(self, metric: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Value of each data point of ``metric`` by its attributes (see ``key``);
        histograms give (count, sum)."""
        data = self.metrics.get_metrics_data()
        found: dict[frozenset[tuple[str, Any]], Any] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name != metric:
                        continue
                    for point in each.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = (point.count, point.sum)  # type: ignore[attr-defined]
                        found[frozenset((point.attributes or {}).items())] = value
        return found


def key(function: str | None = None, **attributes: str) -> frozenset[tuple[str, Any]]:
    """The attributes of a data point of the default queue (and ``function``'s jobs)."""
    found = {"messaging.destination.name": "async_farm.jobs", **attributes}
    if function is not None:
        found["fast_app.job.function"] = f"queue_core_jobs.{function}"
    return frozenset(found.items())


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    use_providers(tracer_provider=tracer_provider, meter_provider=meter_provider)
    jobs.SPAN_PROVIDER = tracer_provider
    try:
        yield Telemetry(tracer_provider, spans, reader)
    finally:
        use_providers()
        jobs.SPAN_PROVIDER = None
        tracer_provider.shutdown()
        meter_provider.shutdown()


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


# -- spans ------------------------------------------------------------------------------


async def test_a_job_enqueued_in_a_request_is_one_trace_request_publish_process(
    telemetry: Telemetry,
) -> None:
    request_tracer = telemetry.tracer_provider.get_tracer("app")

    with request_tracer.start_as_current_span("GET /signup") as request:
        job = await queue(jobs.send_welcome_email, "u1")

    publish = telemetry.one("publish async_farm.jobs")
    process = telemetry.one("process async_farm.jobs")
    assert {trace_id(publish), trace_id(process)} == {request.get_span_context().trace_id}
    assert parent_id(publish) == request.get_span_context().span_id
    assert parent_id(process) == span_id(publish)
    assert publish.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert publish.attributes == {
        "messaging.system": "fast_app.sync",
        "messaging.destination.name": "async_farm.jobs",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.message.id": job.id,
        "fast_app.job.function": "queue_core_jobs.send_welcome_email",
    }
    assert process.attributes is not None
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.id"] == job.id
    assert process.attributes["fast_app.job.function"] == "queue_core_jobs.send_welcome_email"
    assert process.attributes["fast_app.job.attempt"] == 1
    assert 0 <= process.attributes["fast_app.job.queue_wait_s"] < 1  # type: ignore[operator]
    assert process.status.status_code is StatusCode.UNSET
    assert publish.end_time is not None and process.end_time is not None
    assert publish.end_time >= process.end_time  # the sync driver runs the job inside queue()


async def test_the_publish_span_s_context_goes_into_the_job_s_headers(
    telemetry: Telemetry,
) -> None:
    with JobRecorder().capture() as recorder:
        await queue(jobs.send_welcome_email, "u1")

    [captured] = recorder.jobs
    headers = captured.submission.headers
    assert headers is not None
    publish = telemetry.one("publish async_farm.jobs")
    assert publish.attributes is not None
    assert publish.attributes["messaging.system"] == "rabbitmq"
    version, trace_hex, span_hex, flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1, "sampled"
    assert int(trace_hex, 16) == trace_id(publish)
    assert int(span_hex, 16) == span_id(publish)
    remote = trace.get_current_span(extract_headers(headers)).get_span_context()
    assert remote.span_id == span_id(publish) and remote.is_remote


async def test_spans_made_inside_a_job_are_children_of_its_process_span(
    telemetry: Telemetry,
) -> None:
    await queue(jobs.make_span, "inside async")
    await queue(jobs.make_span_in_thread, "inside thread")

    processes = telemetry.finished("process async_farm.jobs")
    for name, process in zip(("inside async", "inside thread"), processes, strict=True):
        inside = telemetry.one(name)
        assert parent_id(inside) == span_id(process)
        assert trace_id(inside) == trace_id(process)
    assert jobs.calls[1]["thread"] != threading.get_ident()


async def test_a_failing_job_s_process_span_has_error_status_and_the_exception(
    telemetry: Telemetry,
) -> None:
    job = await queue(jobs.fail, "boom")

    assert job.outcome is not None and job.outcome.status is JobStatus.FAILED
    process = telemetry.one("process async_farm.jobs")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "builtins.ValueError: boom"
    assert process.attributes is not None
    assert process.attributes["error.type"] == "builtins.ValueError"
    [exception] = [e for e in process.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "boom"
    assert telemetry.one("publish async_farm.jobs").status.status_code is StatusCode.UNSET


async def test_a_soft_timeout_is_an_event_on_the_process_span(telemetry: Telemetry) -> None:
    job = await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05)

    assert job.outcome is not None and job.outcome.status is JobStatus.SOFT_TIMEOUT
    process = telemetry.one("process async_farm.jobs")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes is not None
    assert process.attributes["error.type"] == "soft_timeout"
    [event] = [e for e in process.events if e.name == "fast_app.job.soft_timeout"]
    assert event.attributes == {
        "fast_app.job.soft_timeout_s": 0.05,
        "fast_app.job.still_running": False,
    }
    assert process.start_time is not None
    fired_after_s = (event.timestamp - process.start_time) / 1e9
    assert 0.04 <= fired_after_s < 1


async def test_each_attempt_of_a_retried_job_is_a_process_span_of_the_same_publish(
    telemetry: Telemetry,
) -> None:
    jobs.FLAKY_FAILURES["twice"] = 1
    with override_settings(retry_base_s=0.01, retry_cap_s=0.01):
        job = await queue(jobs.flaky, "twice", __retries=2)

    assert job.outcome is not None and job.outcome.succeeded
    publish = telemetry.one("publish async_farm.jobs")
    first, second = telemetry.finished("process async_farm.jobs")
    assert parent_id(first) == parent_id(second) == span_id(publish)
    assert first.attributes is not None and second.attributes is not None
    assert (
        first.attributes["fast_app.job.attempt"],
        second.attributes["fast_app.job.attempt"],
    ) == (
        1,
        2,
    )
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET
    assert [e.name for e in first.events] == ["exception", "fast_app.job.retry_scheduled"]


async def test_past_the_link_threshold_a_job_starts_a_new_trace_linked_to_the_enqueue(
    telemetry: Telemetry,
) -> None:
    with override_settings(trace_link_after_s=0):
        await queue(jobs.send_welcome_email, "u1")

    publish = telemetry.one("publish async_farm.jobs")
    process = telemetry.one("process async_farm.jobs")
    assert process.parent is None
    assert trace_id(process) != trace_id(publish)
    [link] = process.links
    assert link.context.span_id == span_id(publish)
    assert link.context.trace_id == trace_id(publish)


async def test_a_call_that_cannot_become_a_job_marks_the_publish_span_failed(
    telemetry: Telemetry,
) -> None:
    with pytest.raises(JobValidationError):
        await queue(jobs.three_args, 1, "b")

    publish = telemetry.one("publish async_farm.jobs")
    assert publish.status.status_code is StatusCode.ERROR
    assert publish.attributes is not None
    assert publish.attributes["error.type"] == "fast_app.core.queue.errors.JobValidationError"
    assert [e.name for e in publish.events] == ["exception"]
    assert telemetry.finished("process async_farm.jobs") == []
    assert telemetry.points("fast_app.jobs.enqueued") == {}


# -- baggage ----------------------------------------------------------------------------


async def test_context_keys_are_not_baggage_unless_listed(telemetry: Telemetry) -> None:
    context.set("tenant", "acme")
    context.set("api_token", "s3cret")

    with JobRecorder().capture() as recorder:
        await queue(jobs.make_span, "default")
    await queue(jobs.make_span, "default")

    headers = recorder.jobs[0].submission.headers
    assert headers is not None and "baggage" not in headers
    assert jobs.calls[-1]["baggage"] == {}


async def test_listed_context_keys_travel_as_baggage_and_only_those(
    telemetry: Telemetry,
) -> None:
    context.set("tenant", "acme")
    context.set("api_token", "s3cret")

    with override_settings(baggage_keys="tenant,region"):
        with JobRecorder().capture() as recorder:
            await queue(jobs.make_span, "listed")
        await queue(jobs.make_span, "listed")

    headers = recorder.jobs[0].submission.headers
    assert headers is not None and headers["baggage"] == "tenant=acme"
    assert jobs.calls[-1]["baggage"] == {"tenant": "acme"}
    assert "s3cret" not in str(headers)


def test_trace_headers_keeps_only_what_the_propagators_read() -> None:
    headers = {"traceparent": b"00-ab-cd-01", "x-fast-app-attempt": 2, "baggage": "k=v"}

    assert trace_headers(headers) == {"traceparent": b"00-ab-cd-01", "baggage": "k=v"}
    assert trace_headers({"x-fast-app-attempt": 2}) is None
    assert trace_headers(None) is None


def test_headers_read_back_as_bytes_still_carry_the_context() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    remote = trace.get_current_span(extract_headers({"traceparent": traceparent.encode()}))

    assert remote.get_span_context().span_id == 0xB7AD6B7169203331
    assert not trace.get_current_span(extract_headers({})).get_span_context().is_valid


# -- metrics ----------------------------------------------------------------------------


async def test_counters_and_histograms_of_jobs_by_queue_function_and_reason(
    telemetry: Telemetry,
) -> None:
    await queue(jobs.send_welcome_email, "u1")
    await queue(jobs.send_welcome_email, "u2")
    await queue(jobs.fail, "boom")
    await queue(jobs.sleep_then_record, 5, __soft_timeout_s=0.05)

    email, fail, sleep = key("send_welcome_email"), key("fail"), key("sleep_then_record")
    assert telemetry.points("fast_app.jobs.enqueued") == {email: 2, fail: 1, sleep: 1}
    assert telemetry.points("fast_app.jobs.started") == {email: 2, fail: 1, sleep: 1}
    assert telemetry.points("fast_app.jobs.succeeded") == {email: 2}
    assert telemetry.points("fast_app.jobs.failed") == {
        key("fail", **{"error.type": "exception"}): 1,
        key("sleep_then_record", **{"error.type": "soft_timeout"}): 1,
    }
    durations = telemetry.points("fast_app.job.duration")
    assert set(durations) == {
        email,
        key("fail", **{"error.type": "exception"}),
        key("sleep_then_record", **{"error.type": "soft_timeout"}),
    }
    assert durations[email][0] == 2
    soft_count, soft_sum = durations[key("sleep_then_record", **{"error.type": "soft_timeout"})]
    assert soft_count == 1 and soft_sum >= 0.05
    for histogram in ("fast_app.job.queue_wait", "fast_app.job.enqueue_duration"):
        points = telemetry.points(histogram)
        assert set(points) == {email, fail, sleep}, "never a job id or other unbounded value"
        assert sum(count for count, _ in points.values()) == 4


async def test_a_retried_job_counts_a_retry(telemetry: Telemetry) -> None:
    jobs.FLAKY_FAILURES["once"] = 1
    with override_settings(retry_base_s=0.01, retry_cap_s=0.01):
        await queue(jobs.flaky, "once", __retries=1)

    flaky = key("flaky")
    assert telemetry.points("fast_app.jobs.retried") == {flaky: 1}
    assert telemetry.points("fast_app.jobs.started") == {flaky: 2}
    assert telemetry.points("fast_app.jobs.succeeded") == {flaky: 1}


# -- without an SDK ---------------------------------------------------------------------


async def test_without_an_sdk_nothing_is_recorded_and_no_headers_are_added() -> None:
    use_providers()

    assert not active()
    with JobRecorder().capture() as recorder:
        await queue(jobs.send_welcome_email, "u1")
    job = await queue(jobs.send_welcome_email, "u2")

    assert recorder.jobs[0].submission.headers is None
    assert job.outcome is not None and job.outcome.succeeded


async def test_spans_and_metrics_of_a_named_queue_s_job_name_that_queue(
    telemetry: Telemetry,
) -> None:
    await queue(jobs.record, 1, __queue="reports")

    spans = {span.name: span for span in telemetry.spans.get_finished_spans()}
    assert set(spans) == {"publish reports", "process reports"}
    for span in spans.values():
        assert (span.attributes or {})["messaging.destination.name"] == "reports"
    enqueued = telemetry.points("fast_app.jobs.enqueued")
    assert enqueued == {
        frozenset(
            {
                "messaging.destination.name": "reports",
                "fast_app.job.function": "queue_core_jobs.record",
            }.items()
        ): 1
    }
