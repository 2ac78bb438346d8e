"""Trace context in AMQP headers (the application's propagators) and in heartbeats (W3C).

Jobs carry the enqueuing span's context in their message headers, written and read by
the global propagator (``OTEL_PROPAGATORS``; by default W3C ``traceparent``,
``tracestate`` and ``baggage``). Heartbeats, an internal channel, always use the W3C
``traceparent`` form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "context_from_traceparent",
    "extract_headers",
    "inject_headers",
    "trace_headers",
    "traceparent_of",
    "with_context_baggage",
]

_W3C = TraceContextTextMapPropagator()


class _AmqpHeaderGetter(Getter[Mapping[str, Any]]):
    """Reads header values that the AMQP client may hand over as ``bytes``."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            return [bytes(value).decode("utf-8", "replace")]
        if isinstance(value, str):
            return [value]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_getter = _AmqpHeaderGetter()


def inject_headers(context: Context) -> dict[str, str]:
    """The headers that carry ``context`` (its span and baggage) to a job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_headers(headers: Mapping[str, Any] | None) -> Context:
    """The context a job's headers carry; empty without them (never the current one)."""
    if not headers:
        return Context()
    return propagate.extract(headers, context=Context(), getter=_getter)


def trace_headers(headers: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Of a message's headers, those the propagators use: to pass on when republishing."""
    if not headers:
        return None
    fields = propagate.get_global_textmap().fields
    found = {name: headers[name] for name in fields if name in headers}
    return found or None


def with_context_baggage(
    context: Context, values: Mapping[str, Any], keys: Iterable[str]
) -> Context:
    """``context`` plus baggage entries for the ``keys`` that ``values`` holds as scalars."""
    for key in keys:
        value = values.get(key)
        if isinstance(value, str | int | float | bool):
            context = baggage.set_baggage(key, str(value), context)
    return context


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C ``traceparent`` of ``span``, or ``None`` for an invalid (no-op) span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span, Context()))
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: object) -> Context:
    """A context whose (remote) span is the one ``traceparent`` names; empty if invalid."""
    if not isinstance(traceparent, str):
        return Context()
    return _W3C.extract({"traceparent": traceparent}, context=Context())
