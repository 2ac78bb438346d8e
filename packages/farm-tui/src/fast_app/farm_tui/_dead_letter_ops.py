"""Dead-letter operations for the dashboard, on a loop thread (never the UI's)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.dead_letters import (
    DeadLetter,
    DeadLetterFilter,
    RequeueReport,
    list_dead_letters,
    purge_dead_letters,
    purge_matching_dead_letters,
    requeue_dead_letters,
)
from fast_app.farm_tui._loop_thread import LoopThread

__all__ = ["BrokerDeadLetters"]


class BrokerDeadLetters:
    """The dead-letter part of a ``FarmLink`` that reaches the broker:
    ``fast_app.farm.dead_letters`` run on a loop thread (started on first use), never on
    the UI's loop. Links inherit it and call ``_reach_dead_letters`` once."""

    _dead_letters_settings: QueueSettings
    _dead_letters_io: LoopThread

    def _reach_dead_letters(self, settings: QueueSettings, thread: LoopThread) -> None:
        """Use ``settings`` (broker, queue name, signing key) and run the I/O on ``thread``."""
        self._dead_letters_settings = settings
        self._dead_letters_io = thread

    def list_dead_letters(self, limit: int) -> Future[list[DeadLetter]]:
        """The ``limit`` oldest dead letters."""
        self._dead_letters_io.start()
        settings = self._dead_letters_settings
        return self._dead_letters_io.submit(list_dead_letters(settings, limit=limit))

    def requeue_dead_letters(self, job_ids: Sequence[str] | None) -> Future[RequeueReport]:
        """Requeue these dead letters (``None``: all)."""
        self._dead_letters_io.start()
        wanted = None if job_ids is None else list(job_ids)
        settings = self._dead_letters_settings
        return self._dead_letters_io.submit(requeue_dead_letters(settings, wanted))

    def purge_dead_letters(self, where: DeadLetterFilter | None = None) -> Future[int]:
        """Delete every dead letter (``where``: those it matches)."""
        self._dead_letters_io.start()
        settings = self._dead_letters_settings
        if where is None:
            return self._dead_letters_io.submit(purge_dead_letters(settings))
        return self._dead_letters_io.submit(_purge_matching(settings, where))


async def _purge_matching(settings: QueueSettings, where: DeadLetterFilter) -> int:
    return (await purge_matching_dead_letters(settings, where)).purged
