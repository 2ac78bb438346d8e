"""The output of ``fast-app work --tui``: log records and worker lines, kept for the screen.

While the dashboard owns the terminal nothing may write to it: the supervisor's log
records come here through a ``logging`` handler, and the workers' stdout and stderr
through a pipe each (``Supervisor(worker_output=...)``). Both are kept (bounded) for the
output screen, and written to a log file when one is given.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import IO

from fast_app.farm_tui.link import LogLine

__all__ = ["OutputCapture"]

_KEPT = 2_000
_PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_EXCEPTIONS = logging.Formatter()


class OutputCapture(logging.Handler):
    """A logging handler that keeps lines for the dashboard (and a file, if given).

    Args:
        log_file: also append every line here.
        formatter: how records are written to ``log_file`` (the screen shows messages).
        kept: lines kept between two polls; older ones are dropped and counted.
    """

    def __init__(
        self,
        log_file: Path | None = None,
        formatter: logging.Formatter | None = None,
        kept: int = _KEPT,
    ) -> None:
        super().__init__()
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=kept)
        self._added = 0
        self._taken = 0
        self._lock_lines = threading.Lock()
        self._file: IO[str] | None = None
        if log_file is not None:
            self._file = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 (see close)
        self.setFormatter(formatter or logging.Formatter(_PLAIN))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one log record."""
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + _EXCEPTIONS.formatException(record.exc_info)
            self._keep(LogLine(record.created, record.levelname.lower(), record.name, text))
            if self._file is not None:
                self._write(self.format(record))
        except Exception:
            self.handleError(record)

    def worker_line(self, worker_id: str, line: str) -> None:
        """Keep one line a worker wrote (the supervisor's ``worker_output``)."""
        self._keep(LogLine(time.time(), "output", worker_id, line))
        if self._file is not None:
            self._write(f"[{worker_id}] {line}")

    def _keep(self, line: LogLine) -> None:
        with self._lock_lines:
            self._lines.append(line)
            self._added += 1

    def _write(self, text: str) -> None:
        with self._lock_lines:
            if self._file is not None:
                self._file.write(text + "\n")
                self._file.flush()

    def take(self) -> tuple[list[LogLine], int]:
        """Lines kept since the last call, and how many were dropped before it."""
        with self._lock_lines:
            lines = list(self._lines)
            self._lines.clear()
            skipped = self._added - self._taken - len(lines)
            self._taken = self._added
        return lines, skipped

    def close(self) -> None:
        """Close the log file."""
        with self._lock_lines:
            if self._file is not None:
                self._file.close()
                self._file = None
        super().close()
