"""Calling a list of hooks: each event goes to the hooks that override its method.

Every method of ``Hook`` has its own list here, built once from the hooks that override
it, so an event no hook watches costs one call over an empty tuple. A hook that raises
is logged once per hook and method, and the next hook still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .base import Enqueueing, Hook, JobRun

if TYPE_CHECKING:
    from fast_app.core.queue.handle import Job, JobOutcome

__all__ = ["HookChain"]

logger = logging.getLogger("fast_app.queue")

_Call = Callable[..., None]


class HookChain:
    """Dispatches the job path's events to ``hooks``, in their order.

    Args:
        hooks: the hooks to call; those that override no method cost nothing.
    """

    __slots__ = (
        "_after_enqueue",
        "_after_run",
        "_before_enqueue",
        "_before_retry",
        "_before_run",
        "_cancelled",
        "_consumer_timeout",
        "_dead_lettered",
        "_delivered",
        "_failing",
        "_hard_timeout",
        "_job_prepared",
        "_refused",
        "_retried",
        "_settled",
        "hooks",
    )

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = tuple(hooks)
        self._failing: set[tuple[str, str]] = set()
        self._before_enqueue = self._overriding("before_enqueue")
        self._job_prepared = self._overriding("job_prepared")
        self._after_enqueue = self._overriding("after_enqueue")
        self._delivered = self._overriding("delivered")
        self._refused = self._overriding("refused")
        self._before_run = self._overriding("before_run")
        self._after_run = self._overriding("after_run")
        self._hard_timeout = self._overriding("hard_timeout")
        self._consumer_timeout = self._overriding("consumer_timeout")
        self._before_retry = self._overriding("before_retry")
        self._retried = self._overriding("retried")
        self._dead_lettered = self._overriding("dead_lettered")
        self._cancelled = self._overriding("cancelled")
        self._settled = self._overriding("settled")

    def _overriding(self, method: str) -> tuple[_Call, ...]:
        base = getattr(Hook, method)
        return tuple(
            getattr(hook, method) for hook in self.hooks if getattr(type(hook), method) is not base
        )

    def _dispatch(self, calls: tuple[_Call, ...], *args: Any) -> None:
        for call in calls:
            try:
                call(*args)
            except Exception:
                self._report(call)

    def _report(self, call: _Call) -> None:
        key = (type(getattr(call, "__self__", None)).__qualname__, getattr(call, "__name__", "?"))
        if key in self._failing:
            return
        self._failing.add(key)
        logger.exception("hook %s.%s raised (ignored; logged once)", *key)

    # Each method only dispatches: see ``Hook`` for what the events mean.

    def before_enqueue(self, call: Enqueueing) -> None:
        if self._before_enqueue:
            self._dispatch(self._before_enqueue, call)

    def job_prepared(self, call: Enqueueing) -> dict[str, str] | None:
        """The headers the hooks add to the job's message, if any."""
        if not self._job_prepared:
            return None
        headers: dict[str, str] = {}
        self._dispatch(self._job_prepared, call, headers)
        return headers or None

    def after_enqueue(self, call: Enqueueing, job: Job | None, error: BaseException | None) -> None:
        if self._after_enqueue:
            self._dispatch(self._after_enqueue, call, job, error)

    def delivered(self, run: JobRun) -> None:
        if self._delivered:
            self._dispatch(self._delivered, run)

    def refused(self, run: JobRun, reason: str, description: str) -> None:
        if self._refused:
            self._dispatch(self._refused, run, reason, description)

    def before_run(self, run: JobRun) -> None:
        if self._before_run:
            self._dispatch(self._before_run, run)

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        run.outcome = outcome
        if self._after_run:
            self._dispatch(self._after_run, run, outcome)

    def hard_timeout(self, run: JobRun, description: str) -> None:
        if self._hard_timeout:
            self._dispatch(self._hard_timeout, run, description)

    def consumer_timeout(self, run: JobRun, description: str) -> None:
        if self._consumer_timeout:
            self._dispatch(self._consumer_timeout, run, description)

    def before_retry(self, run: JobRun) -> dict[str, str] | None:
        """The headers the hooks add to the retry's message, if any."""
        if not self._before_retry:
            return None
        headers: dict[str, str] = {}
        self._dispatch(self._before_retry, run, headers)
        return headers or None

    def retried(self, run: JobRun) -> None:
        if self._retried:
            self._dispatch(self._retried, run)

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        if self._dead_lettered:
            self._dispatch(self._dead_lettered, run, reason)

    def cancelled(self, run: JobRun) -> None:
        if self._cancelled:
            self._dispatch(self._cancelled, run)

    def settled(self, run: JobRun) -> None:
        if self._settled:
            self._dispatch(self._settled, run)
