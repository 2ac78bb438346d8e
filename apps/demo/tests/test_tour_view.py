"""How the tour shows runs and traces."""

from __future__ import annotations

from fast_app_demo.tour_view import describe_run, describe_trace, trace_id_of
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def test_a_run_shows_attempt_status_process_duration_and_context() -> None:
    run = {
        "attempt": 2,
        "max_attempts": 4,
        "status": "failed",
        "worker": "host-42",
        "started_at": 10.0,
        "ended_at": 10.25,
        "request_id": "req-1",
        "user_id": "usr_1",
        "error": "WarehouseUnavailableError: 503",
    }

    assert describe_run(run) == (
        "attempt 2/4 failed in host-42 (250 ms); context: request_id=req-1 user_id=usr_1; "
        "error: WarehouseUnavailableError: 503"
    )


def test_a_run_whose_process_ended_has_no_end() -> None:
    run = {
        "attempt": 1,
        "max_attempts": 1,
        "status": "running",
        "worker": "h-1",
        "started_at": 1.0,
        "ended_at": None,
        "request_id": None,
        "user_id": None,
    }

    assert "(no end recorded)" in describe_run(run)


def test_the_trace_id_comes_from_the_traceresponse_header() -> None:
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    assert trace_id_of(header) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(None) is None
    assert trace_id_of("garbage") is None


def test_a_trace_lists_span_names_in_start_order_with_repeats_counted() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("POST /orders") as request,
        tracer.start_as_current_span("publish q"),
    ):
        for _ in range(3):
            with (
                tracer.start_as_current_span("process q"),
                tracer.start_as_current_span("call warehouse api"),
            ):
                pass
    with tracer.start_as_current_span("another request"):
        pass
    trace_id = f"{request.get_span_context().trace_id:032x}"

    assert describe_trace(memory.get_finished_spans(), trace_id) == (
        "POST /orders > publish q > process q x3 > call warehouse api x3"
    )
