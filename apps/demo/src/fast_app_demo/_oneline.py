"""A console span exporter that prints one short line per span, and not too many.

The SDK's ``ConsoleSpanExporter`` prints some 40 lines of JSON per span: a single
sign-up fills the terminal. One line, with the full trace id, is enough to see that the
request, its ``publish`` span and the job's spans on a worker share a trace. A bulk of a
thousand jobs would still print two thousand lines, so past a budget per second the
exporter counts spans instead of printing them, and says how many it left out.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

__all__ = ["OneLineSpanExporter", "format_span"]


def format_span(span: ReadableSpan) -> str:
    """``[otel service] trace <id> <name> (<kind>, <ms> ms)``, plus the error if any."""
    context = span.context
    trace_id = f"{context.trace_id:032x}" if context is not None else "-" * 32
    service = span.resource.attributes.get("service.name", "unknown_service")
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    line = (
        f"[otel {service}] trace {trace_id} {span.name} "
        f"({span.kind.name.lower()}, {duration_ms:.1f} ms)"
    )
    if span.status.status_code is StatusCode.ERROR:
        line += f" ERROR {span.status.description or ''}".rstrip()
    return line


class OneLineSpanExporter(SpanExporter):
    """Writes ``format_span`` of finished spans to a stream (default: stderr).

    Args:
        stream: where to write; default ``sys.stderr`` at the time of each export.
        lines_per_second: most spans printed per second; the rest are counted.
        clock: monotonic seconds (for tests).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        lines_per_second: int = 40,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._budget = lines_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._printed = 0
        self._left_out = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Print the spans within the budget of the current second."""
        lines: list[str] = []
        with self._lock:
            now = self._clock()
            if now - self._window_start >= 1.0:
                lines.extend(self._left_out_line())
                self._window_start, self._printed = now, 0
            for span in spans:
                if self._printed < self._budget:
                    lines.append(format_span(span))
                    self._printed += 1
                else:
                    self._left_out += 1
        self._write(lines)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Say how many spans were left out so far."""
        with self._lock:
            lines = self._left_out_line()
        self._write(lines)
        return True

    def shutdown(self) -> None:
        """Say how many spans were left out, if any."""
        self.force_flush()

    def _left_out_line(self) -> list[str]:
        if not self._left_out:
            return []
        line = (
            f"[otel] ... {self._left_out} more spans not printed "
            "(OTEL_TRACES_EXPORTER=console prints them all, otlp sends them to a backend)"
        )
        self._left_out = 0
        return [line]

    def _write(self, lines: list[str]) -> None:
        if lines:
            stream = self._stream or sys.stderr
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()
