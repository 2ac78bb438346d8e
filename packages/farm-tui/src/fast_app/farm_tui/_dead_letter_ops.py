"""Dead-letter operations for the dashboard, on a loop thread (never the UI's)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.dead_letters import (
    DeadLetter,
    RequeueReport,
    list_dead_letters,
    purge_dead_letters,
    requeue_dead_letters,
)
from fast_app.farm_tui._loop_thread import LoopThread

__all__ = ["DeadLetterOps"]


class DeadLetterOps:
    """``fast_app.farm.dead_letters``, run on ``thread`` (started on first use).

    Args:
        settings: the queue settings (broker, queue name, signing key).
        thread: where the broker I/O runs.
    """

    def __init__(self, settings: QueueSettings, thread: LoopThread) -> None:
        self._settings = settings
        self._thread = thread

    def list(self, limit: int) -> Future[list[DeadLetter]]:
        """The ``limit`` oldest dead letters."""
        self._thread.start()
        return self._thread.submit(list_dead_letters(self._settings, limit=limit))

    def requeue(self, job_ids: Sequence[str] | None) -> Future[RequeueReport]:
        """Requeue these dead letters (``None``: all)."""
        self._thread.start()
        wanted = None if job_ids is None else list(job_ids)
        return self._thread.submit(requeue_dead_letters(self._settings, wanted))

    def purge(self) -> Future[int]:
        """Delete every dead letter."""
        self._thread.start()
        return self._thread.submit(purge_dead_letters(self._settings))
