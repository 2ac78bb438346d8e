"""What the dead-letter API reports: dead letters left in place, risky requeues, the
report of a ``requeue``, and an ambiguous job id prefix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fast_app.farm.errors import FarmError
from fast_app.farm.printable import printable

__all__ = [
    "AmbiguousJobIdError",
    "ForcedRequeue",
    "OnUnreadable",
    "PurgeReport",
    "RequeueReport",
    "SkippedDeadLetter",
]


class AmbiguousJobIdError(FarmError, LookupError):
    """A job id prefix matches the dead letters of more than one job."""

    def __init__(
        self,
        candidates: Mapping[str, tuple[str, ...]],
        queues: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        #: Each ambiguous prefix, and the job ids it matches.
        self.candidates = dict(candidates)
        #: When several queues were searched: the queues holding each job id matched.
        self.queues = dict(queues or {})
        super().__init__(
            "; ".join(
                f"job id prefix {printable(prefix)} is ambiguous: it matches "
                + ", ".join(self._match(job_id) for job_id in job_ids)
                for prefix, job_ids in self.candidates.items()
            )
        )

    def _match(self, job_id: str) -> str:
        queues = self.queues.get(job_id)
        shown = printable(job_id)
        return f"{shown} (in {printable(', '.join(queues))})" if queues else shown


@dataclass(frozen=True)
class SkippedDeadLetter:
    """A dead letter left in the dead-letter queue, and why.

    Attributes:
        job_id: its job id, when it has one.
        reason: why it stays.
        position: where it was in the queue (1 for the first), for one that could not be
            read at all (and so has no job id to name it by).
    """

    job_id: str | None
    reason: str
    position: int | None = None


@dataclass(frozen=True)
class ForcedRequeue:
    """A job requeued by ``force`` although it would otherwise have stayed, and why."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class RequeueReport:
    """What ``requeue_dead_letters`` did.

    Attributes:
        requeued: ids of the jobs put back into their jobs queues.
        duplicates_removed: ids of further dead letters of a requeued job, removed.
        skipped: dead letters that cannot be requeued; they stay.
        not_found: ids asked for that no dead letter has.
        forced: of the requeued jobs, those that only ``force`` requeued: each one is
            a risk taken (an unsigned or forged job now runs), to be reported loudly.
        unreadable: dead letters that could not be read at all, by position; they stay.
    """

    requeued: tuple[str, ...] = ()
    duplicates_removed: tuple[str, ...] = ()
    skipped: tuple[SkippedDeadLetter, ...] = ()
    not_found: tuple[str, ...] = ()
    forced: tuple[ForcedRequeue, ...] = ()
    unreadable: tuple[SkippedDeadLetter, ...] = ()
    #: The queue each requeued job went back to (the one whose dead letters held it).
    requeued_to: Mapping[str, str] = field(default_factory=dict)
    #: With a filter (``where``): how many dead letters it did not match; they stay.
    left_alone: int = 0

    @property
    def complete(self) -> bool:
        """Whether every dead letter asked for left the dead-letter queue.

        An unreadable dead letter counts against it: it may have been one asked for.
        """
        return not self.skipped and not self.not_found and not self.unreadable


@dataclass(frozen=True)
class PurgeReport:
    """What ``purge_matching_dead_letters`` did.

    Attributes:
        purged: how many matching dead letters were deleted.
        left_alone: how many did not match; they stay.
        unreadable: dead letters that could not be read at all, by position; they stay.
    """

    purged: int = 0
    left_alone: int = 0
    unreadable: tuple[SkippedDeadLetter, ...] = ()


#: Called with each dead letter that could not be read (``reason``: ``unreadable (...)``).
OnUnreadable = Callable[[SkippedDeadLetter], None]
