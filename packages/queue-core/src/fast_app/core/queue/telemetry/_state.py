"""Which OpenTelemetry providers the queue reports to, found cheaply on every call.

Until an application configures an SDK, the API's global providers are proxies that drop
everything. Instrumenting through them anyway would still cost microseconds per job
(spans that record nothing, attribute dicts, header injection, and asking the API for
its providers, which reads the environment each time), so the hot paths ask ``active()``
first and skip all work while it is false. The answer is cached: once a real provider is
found for good, and for half a second while none is (a provider set after the queue's
first use is picked up within that time; ``use_providers`` takes effect at once).
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time

from opentelemetry import metrics, trace

from .metrics import QueueMetrics

__all__ = [
    "SCOPE",
    "active",
    "flush",
    "meter_provider",
    "queue_metrics",
    "tracer",
    "tracer_provider",
    "use_providers",
]

logger = logging.getLogger("fast_app.queue")

SCOPE = "fast_app.queue"

try:
    _VERSION: str | None = importlib.metadata.version("fast-app-queue-core")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkouts
    _VERSION = None

_lock = threading.Lock()
_tracer_provider_override: trace.TracerProvider | None = None
_meter_provider_override: metrics.MeterProvider | None = None
_tracer: trace.Tracer | None = None
_metrics: QueueMetrics | None = None
_RECHECK_S = 0.5
_next_check = 0.0  # monotonic time of the next look at the providers, while one is missing
_complete = False  # both providers found: nothing left to look for


def tracer_provider() -> trace.TracerProvider | None:
    """The tracer provider in use, or ``None`` while it is the API's no-op one."""
    provider = _tracer_provider_override or trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def meter_provider() -> metrics.MeterProvider | None:
    """The meter provider in use, or ``None`` while it is the API's no-op one."""
    provider = _meter_provider_override or metrics.get_meter_provider()
    # The API's proxy provider class is private: every provider the API package itself
    # defines (proxy or no-op) records nothing.
    if type(provider).__module__.startswith("opentelemetry.metrics"):
        return None
    return provider


def active() -> bool:
    """Whether any telemetry is recorded: a tracer or meter provider is configured."""
    if _complete:
        return True
    if time.monotonic() >= _next_check:
        _refresh()
    return _tracer is not None or _metrics is not None


def tracer() -> trace.Tracer | None:
    """The queue's tracer, or ``None`` while no SDK is configured (then trace nothing)."""
    if not _complete and time.monotonic() >= _next_check:
        _refresh()
    return _tracer


def queue_metrics() -> QueueMetrics | None:
    """The queue's instruments, or ``None`` while no SDK is configured (count nothing)."""
    if not _complete and time.monotonic() >= _next_check:
        _refresh()
    return _metrics


def _refresh() -> None:
    global _tracer, _metrics, _next_check, _complete
    with _lock:
        if _tracer is None and (found := tracer_provider()) is not None:
            _tracer = found.get_tracer(SCOPE, _VERSION)
        if _metrics is None and (meters := meter_provider()) is not None:
            _metrics = QueueMetrics(meters.get_meter(SCOPE, _VERSION))
        _complete = _tracer is not None and _metrics is not None
        _next_check = time.monotonic() + _RECHECK_S


def use_providers(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> None:
    """Report to these providers instead of the global ones; ``None`` means the global one.

    For tests (an SDK provider with an in-memory exporter, without touching the global
    providers, which can be set only once per process) and for applications that keep
    their queue telemetry apart. Calling it with no arguments goes back to the globals.
    """
    global _tracer_provider_override, _meter_provider_override, _tracer, _metrics
    global _next_check, _complete
    with _lock:
        _tracer_provider_override = tracer_provider
        _meter_provider_override = meter_provider
        _tracer = None
        _metrics = None
        _next_check = 0.0
        _complete = False


def flush(timeout_s: float = 2.0) -> None:
    """Export what the providers buffered, waiting at most about ``timeout_s`` for each.

    For a process about to end with ``os._exit`` (a worker at a job's hard timeout),
    which skips the SDK's own flush at exit.
    """
    millis = max(1, int(timeout_s * 1000))
    for provider in (tracer_provider(), meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            continue
        try:
            force_flush(millis)
        except Exception:
            logger.debug("flushing telemetry failed", exc_info=True)
