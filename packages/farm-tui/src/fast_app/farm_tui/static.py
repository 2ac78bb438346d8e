"""A farm made of fixed data: for snapshot tests, key tests and the responsiveness benchmark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from fast_app.farm.dead_letters import DeadLetter, DeadLetterFilter, RequeueReport
from fast_app.farm_tui.link import LinkStatus, LinkUpdate, LogLine

__all__ = ["StaticFarm"]


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class StaticFarm:
    """Hands over the snapshots, lines and dead letters it was given; records commands.

    Args:
        snapshots: handed over by the first ``poll`` (more with ``push``).
        dead_letters: what the dead-letter screen lists; requeue and purge remove them.
        log_lines: output lines handed over by the first ``poll``.
        owns_farm: quitting stops the "farm" (``stop`` makes ``status`` say stopped).
        queue_name: the queue named in the status bar.
    """

    def __init__(
        self,
        snapshots: Iterable[dict[str, Any]] = (),
        *,
        dead_letters: Iterable[DeadLetter] = (),
        log_lines: Iterable[LogLine] = (),
        owns_farm: bool = True,
        queue_name: str = "jobs",
    ) -> None:
        self._snapshots = list(snapshots)
        self._lines = list(log_lines)
        self.dead_letters = list(dead_letters)
        self.owns_farm = owns_farm
        self.queue_name = queue_name
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.requeued: list[str] = []
        self.stop_requests = 0
        self.closed = False
        #: What ``status`` says while not stopped (tests set a lost connection).
        self.link_status = LinkStatus(True, detail="static data")

    def push(self, *snapshots: dict[str, Any]) -> None:
        """Hand these over at the next ``poll``."""
        self._snapshots.extend(snapshots)

    def start(self) -> None:
        """Nothing to start."""

    def poll(self) -> LinkUpdate:
        """What was given (or pushed) since the last call."""
        update = LinkUpdate(self._snapshots, self._lines)
        self._snapshots, self._lines = [], []
        return update

    def status(self) -> LinkStatus:
        """Connected until stopped."""
        if self.closed or (self.owns_farm and self.stop_requests):
            return LinkStatus(False, True, "stopped", exit_code=0)
        return self.link_status

    def send_command(self, supervisor_id: str, command: dict[str, Any]) -> Future[None]:
        """Record the command."""
        self.commands.append((supervisor_id, dict(command)))
        return _done(None)

    def list_dead_letters(self, limit: int) -> Future[list[DeadLetter]]:
        """The dead letters given."""
        return _done(self.dead_letters[:limit])

    def requeue_dead_letters(self, job_ids: Sequence[str] | None) -> Future[RequeueReport]:
        """Remove them from the list, as if requeued."""
        wanted = None if job_ids is None else set(job_ids)
        requeued = [
            letter.job_id
            for letter in self.dead_letters
            if letter.job_id is not None and (wanted is None or letter.job_id in wanted)
        ]
        self.dead_letters = [d for d in self.dead_letters if d.job_id not in requeued]
        self.requeued += requeued
        missing = () if wanted is None else tuple(sorted(wanted - set(requeued)))
        return _done(RequeueReport(requeued=tuple(requeued), not_found=missing))

    def purge_dead_letters(self, where: DeadLetterFilter | None = None) -> Future[int]:
        """Empty the list (``where``: of what it matches)."""
        kept = [] if where is None else [d for d in self.dead_letters if not where.matches(d)]
        count = len(self.dead_letters) - len(kept)
        self.dead_letters = kept
        return _done(count)

    def stop(self) -> None:
        """Count the request."""
        self.stop_requests += 1

    def close(self) -> None:
        """Mark it closed."""
        self.closed = True
