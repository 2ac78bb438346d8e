"""How a worker process ends: its exit codes, and ending it at once."""

from __future__ import annotations

import logging
import os
import sys

from fast_app.core.queue.telemetry import flush

__all__ = ["EXIT_HARD_TIMEOUT", "EXIT_OK", "EXIT_STARTUP_FAILED", "exit_now"]

EXIT_OK = 0
EXIT_HARD_TIMEOUT = 3
EXIT_STARTUP_FAILED = 4

_TELEMETRY_FLUSH_S = 2.0


def exit_now(code: int) -> None:
    """End the process at once, logs flushed.

    Ending the process is the only way to stop a job that will not stop; the broker
    redelivers this worker's other unacknowledged jobs to other workers. ``os._exit``
    skips the OpenTelemetry SDK's flush at exit: spans and metrics are flushed first.
    """
    flush(_TELEMETRY_FLUSH_S)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
