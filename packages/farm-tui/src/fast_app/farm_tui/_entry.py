"""What the ``fast-app`` command runs: ``work --tui`` and ``top``."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.broker_queues import known_queues
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.settings import FarmSettings, load_farm_settings
from fast_app.farm_tui._output import OutputCapture
from fast_app.farm_tui.app import FarmApp
from fast_app.farm_tui.embedded import EmbeddedFarm
from fast_app.farm_tui.remote import RemoteFarm

__all__ = ["run_embedded", "run_remote"]


@contextlib.contextmanager
def _logging_captured(log_file: Path | None) -> Iterator[OutputCapture]:
    """Send this process's log records to the dashboard (and ``log_file``) meanwhile.

    The records keep the level and format ``configure_logging`` chose; the stderr
    handler comes back afterwards, so that what happens after the dashboard closed (the
    end of a drain) is seen.
    """
    root = logging.getLogger()
    previous = root.handlers[:]
    formatter = previous[0].formatter if previous else None
    capture = OutputCapture(log_file, formatter)
    root.handlers[:] = [capture]
    try:
        yield capture
    finally:
        root.handlers[:] = previous
        capture.close()


def run_embedded(farm: FarmSettings, queue: QueueSettings, *, log_file: Path | None = None) -> int:
    """``fast-app work --tui``: run the supervisor with the dashboard; its exit code.

    Quitting (``q``, SIGTERM) drains the workers like SIGTERM without a dashboard.

    Raises:
        Exception: what kept the supervisor from starting (the broker unreachable...).
    """
    with _logging_captured(log_file) as capture:
        link = EmbeddedFarm(farm, queue, output=capture)
        try:
            FarmApp(link, handle_signals=True).run()
        finally:
            # The dashboard may have ended without the farm (a crash): drain it now.
            if not link.status().stopped:
                print("fast-app work: draining the workers…", file=sys.stderr)
            link.close()
    status = link.status()
    if status.error is not None:
        raise status.error
    if log_file is not None:
        print(f"fast-app work: the log is in {log_file}", file=sys.stderr)
    return 0 if status.exit_code is None else status.exit_code


def run_remote(queue: QueueSettings) -> int:
    """``fast-app top``: the dashboard of a running farm; quitting leaves the farm running.

    Raises:
        OSError, TimeoutError, ConnectionError: the broker could not be reached at start.
    """
    try:
        known = known_queues(queue, load_farm_settings())
    except FarmConfigurationError:
        known = (queue.name,)  # top runs without valid farm settings: QUEUE_NAME alone
    with _logging_captured(None) as capture:
        link = RemoteFarm(queue, output=capture, queues=known)
        try:
            link.connect()
            FarmApp(link, handle_signals=True).run()
        finally:
            link.close()
    return 0
