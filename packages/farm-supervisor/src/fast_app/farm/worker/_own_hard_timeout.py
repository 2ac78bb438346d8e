"""A job at its hard timeout: recorded as failed, then the worker process ends.

The worker records the failure (a retry or a dead letter, then the ack) and ends itself,
the only way to stop a job that will not stop; the broker hands the worker's other
unacknowledged jobs to other workers. A worker whose event loop is blocked cannot do
this: its supervisor kills it from outside.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sized

from fast_app.core.queue.handle import JobError
from fast_app.farm._wording import counted
from fast_app.farm.dead_letters.reasons import DeadReason
from fast_app.farm.worker._exit import EXIT_HARD_TIMEOUT, exit_now
from fast_app.farm.worker._settlement import Settlement
from fast_app.farm.worker._state import InFlightJob

__all__ = ["HardTimeouts"]

logger = logging.getLogger("fast_app.farm.worker")

_HARD_TIMEOUT_SETTLE_S = 10.0


class HardTimeouts:
    """Ends the worker when one of its jobs reaches its hard timeout.

    Args:
        worker_id: named in logs and on the job's trace.
        in_flight: the worker's jobs in flight (counted in the log).
        settlement: records the job's failure (retry or dead letter) and acknowledges it.
        round_trip: a round trip on the consuming channel, which returns once the broker
            has processed what was sent on it before.
        last_words: sends a last heartbeat (with the job's outcome) before the exit.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        in_flight: Sized,
        settlement: Settlement,
        round_trip: Callable[[], Awaitable[None]],
        last_words: Callable[[], None],
    ) -> None:
        self._worker_id = worker_id
        self._in_flight = in_flight
        self._settlement = settlement
        self._round_trip = round_trip
        self._last_words = last_words

    def on_hard_timeout(self, job: InFlightJob) -> None:
        """Called (by the event loop's timer) when ``job`` reaches its hard timeout."""
        if job.still_running:
            # Already settled (as a soft timeout); only the process can stop it now.
            logger.error(
                "job %s (%s) is still running at its hard timeout: ending worker %s",
                job.envelope.id,
                job.envelope.function,
                self._worker_id,
            )
            exit_now(EXIT_HARD_TIMEOUT)
        job.ended_by_hard_timeout = True
        if (delivery := job.delivery) is not None:
            hard = job.envelope.options.hard_timeout_s or 0
            delivery.hooks.hard_timeout(
                delivery.run,
                f"passed its hard timeout of {hard:g}s; worker {self._worker_id} ends itself",
            )
        asyncio.get_running_loop().create_task(self._end_by_hard_timeout(job))

    async def _end_by_hard_timeout(self, job: InFlightJob) -> None:
        envelope = job.envelope
        hard = envelope.options.hard_timeout_s
        logger.error(
            "job %s (%s) passed its hard timeout of %gs: recording it and ending worker %s "
            "(%s in flight return to the queue)",
            envelope.id,
            envelope.function,
            hard,
            self._worker_id,
            counted(len(self._in_flight) - 1, "other job"),
        )
        error = JobError("hard_timeout", f"passed its hard timeout of {hard:g}s")
        delivery = job.delivery
        try:
            async with asyncio.timeout(_HARD_TIMEOUT_SETTLE_S):
                if delivery is not None:
                    await self._settlement.retry_or_bury(
                        delivery, envelope, DeadReason.HARD_TIMEOUT, error
                    )
                # A round trip on the consuming channel: the broker has processed the ack
                # above before it answers, so exiting now cannot lose it.
                await self._round_trip()
        except Exception:
            logger.exception("worker %s could not record the hard timeout", self._worker_id)
        finally:
            if delivery is not None:
                delivery.hooks.settled(delivery.run)
            self._last_words()
            exit_now(EXIT_HARD_TIMEOUT)
