"""Messages refused at an edge: counted, and logged once per source and interval.

A flood of garbage must neither fill the log nor go unseen: the first refusal from a
source is logged at once, later ones are counted and summed up in one line per interval.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Literal

from fast_app.farm.printable import printable

__all__ = ["Reason", "Refusals"]

#: Why a message was refused.
Reason = Literal["malformed", "unsigned", "stale", "replayed", "oversized"]

_LOG_INTERVAL_S = 60.0
_DETAIL_WIDTH = 200


class Refusals:
    """Counts refused messages by source and reason: ``command_unsigned``,
    ``snapshot_malformed``, ``heartbeat_oversized``...

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

    def refuse(self, source: str, reason: Reason, detail: str = "") -> None:
        """Count one message from ``source`` refused for ``reason``, and log it if its
        turn has come (``detail`` says more: which field, which worker)."""
        key = f"{source}_{reason}"
        self.counts[key] += 1
        self._unreported[key] += 1
        now = time.monotonic()
        if now < self._next_log_at.get(key, 0.0):
            return
        self._next_log_at[key] = now + self._interval_s
        count = self._unreported.pop(key)
        said = printable(detail)[:_DETAIL_WIDTH] if detail else reason
        if count == 1:
            self._logger.warning("ignored a %s message (%s): %s", source, reason, said)
        else:
            self._logger.warning(
                "ignored %d %s messages (%s) in the last %gs; the latest: %s",
                count,
                source,
                reason,
                self._interval_s,
                said,
            )

    def as_dict(self) -> dict[str, int]:
        """Refusals so far, by ``<source>_<reason>``."""
        return dict(self.counts)
