"""How the tour shows a job's runs and a request's trace: plain functions of their data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["describe_run", "describe_trace", "trace_id_of"]


def describe_run(run: Mapping[str, Any]) -> str:
    """One line per run: attempt, status, process, duration, queue, the context it ran with."""
    ended_at = run.get("ended_at")
    took = (
        "no end recorded" if ended_at is None else f"{(ended_at - run['started_at']) * 1000:.0f} ms"
    )
    queue = run.get("queue")
    on_queue = f", queue {queue}" if queue else ""
    line = (
        f"attempt {run['attempt']}/{run['max_attempts']} {run['status']} in {run['worker']} "
        f"({took}{on_queue}); context: request_id={run['request_id']} user_id={run['user_id']}"
    )
    if run.get("error"):
        line += f"; error: {run['error']}"
    return line


def trace_id_of(traceresponse: str | None) -> str | None:
    """The trace id of a ``traceresponse`` header (``00-<trace id>-<span id>-<flags>``)."""
    if not traceresponse:
        return None
    parts = traceresponse.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def describe_trace(spans: Iterable[ReadableSpan], trace_id: str) -> str:
    """The names of a trace's spans in the order they started, repeats counted.

    ``POST /orders > publish q > process q x3 > call warehouse api x3``: the request, the
    job's publication, its three runs and what each run did.
    """
    mine = sorted(
        (s for s in spans if s.context is not None and f"{s.context.trace_id:032x}" == trace_id),
        key=lambda span: span.start_time or 0,
    )
    counts = Counter(span.name for span in mine)
    names = list(dict.fromkeys(span.name for span in mine))
    return " > ".join(name if counts[name] == 1 else f"{name} x{counts[name]}" for name in names)
