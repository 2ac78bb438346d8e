"""The worker's thread pool for plain (non-``async``) job functions, which knows how many
of its threads are running a job.

A thread cannot be cancelled: a job still running in one when the worker stops would
keep the process alive past its grace period, and, once the worker's connection closes,
run on beside its own redelivery on another worker. The worker asks ``busy`` after its
drain and ends the process when threads are still at work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["JobThreads"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class JobThreads(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that counts the calls running in its threads."""

    def __init__(self, max_workers: int | None, thread_name_prefix: str = "job") -> None:
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self._running = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """How many calls are running in a thread right now."""
        return self._running

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        def counted() -> _T:
            with self._lock:
                self._running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1

        return super().submit(counted)

    def __repr__(self) -> str:
        return f"<JobThreads busy={self._running}>"
