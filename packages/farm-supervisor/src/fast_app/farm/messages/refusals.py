"""Messages refused at an edge: counted, and logged once per source and interval.

A flood of garbage must neither fill the log nor go unseen: the first refusal from a
source is logged at once, later ones are counted and summed up in one line per interval.
"""

from __future__ import annotations

import collections
import logging
import time

from fast_app.farm.printable import printable

__all__ = ["Refusals"]

_LOG_INTERVAL_S = 60.0
_DETAIL_WIDTH = 200


class Refusals:
    """Counts refused messages by source (``command``, ``snapshot``, ``heartbeat``...).

    Args:
        logger: where refusals are reported.
        interval_s: at most one line per source in this many seconds.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = _LOG_INTERVAL_S) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self.counts: collections.Counter[str] = collections.Counter()
        self._unreported: collections.Counter[str] = collections.Counter()
        self._next_log_at: dict[str, float] = {}

    def refuse(self, source: str, why: str) -> None:
        """Count one message refused from ``source``, and log it if its turn has come."""
        self.counts[source] += 1
        self._unreported[source] += 1
        now = time.monotonic()
        if now < self._next_log_at.get(source, 0.0):
            return
        self._next_log_at[source] = now + self._interval_s
        count = self._unreported.pop(source)
        detail = printable(why)[:_DETAIL_WIDTH]
        if count == 1:
            self._logger.warning("ignored a %s message: %s", source, detail)
        else:
            self._logger.warning(
                "ignored %d %s messages in the last %gs; the latest: %s",
                count,
                source,
                self._interval_s,
                detail,
            )

    def as_dict(self) -> dict[str, int]:
        """Refusals so far, by source."""
        return dict(self.counts)
