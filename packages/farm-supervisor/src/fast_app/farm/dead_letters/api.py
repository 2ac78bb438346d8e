"""The dead-letter API: list, find, count, requeue and purge dead letters.

For scripts and the dashboard; ``fast_app.farm.cli.dlq`` puts the ``fast-app dlq``
command line on it.

Reading is non-destructive (see ``fast_app.farm.dead_letters._broker``): only
``requeue_dead_letters`` and ``purge_dead_letters`` remove dead letters. A dead letter
held by another reader at that moment is not seen. A dead letter that cannot be read at
all is passed over and reported by its position in the queue; it never stops the others
from being read.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import msgspec

from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.envelope import encode_envelope
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import trace_headers
from fast_app.farm.dead_letters._broker import TakenDeadLetter, open_dead_letters
from fast_app.farm.dead_letters.letter import DeadLetter
from fast_app.farm.dead_letters.reasons import DeadReason
from fast_app.farm.errors import FarmError
from fast_app.farm.printable import printable

__all__ = [
    "MIN_PREFIX_LENGTH",
    "AmbiguousJobIdError",
    "ForcedRequeue",
    "OnUnreadable",
    "RequeueReport",
    "SkippedDeadLetter",
    "count_dead_letters",
    "find_dead_letter",
    "list_dead_letters",
    "purge_dead_letters",
    "requeue_dead_letters",
]

# The name the module had before it became a package: logging set up for it still applies.
logger = logging.getLogger("fast_app.farm.dead_letters")

#: Shortest job id prefix that ``show`` and ``requeue`` look up (when asked to).
MIN_PREFIX_LENGTH = 6


class AmbiguousJobIdError(FarmError, LookupError):
    """A job id prefix matches the dead letters of more than one job."""

    def __init__(self, candidates: Mapping[str, tuple[str, ...]]) -> None:
        #: Each ambiguous prefix, and the job ids it matches.
        self.candidates = dict(candidates)
        super().__init__(
            "; ".join(
                f"job id prefix {printable(prefix)} is ambiguous: it matches "
                + ", ".join(printable(job_id) for job_id in job_ids)
                for prefix, job_ids in self.candidates.items()
            )
        )


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
        requeued: ids of the jobs put back into the jobs queue.
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

    @property
    def complete(self) -> bool:
        """Whether every dead letter asked for left the dead-letter queue.

        An unreadable dead letter counts against it: it may have been one asked for.
        """
        return not self.skipped and not self.not_found and not self.unreadable


#: Called with each dead letter that could not be read (``reason``: ``unreadable (...)``).
OnUnreadable = Callable[[SkippedDeadLetter], None]


async def list_dead_letters(
    settings: QueueSettings,
    *,
    limit: int | None = None,
    on_unreadable: OnUnreadable | None = None,
) -> list[DeadLetter]:
    """The dead letters, oldest first (the ``limit`` oldest ones); removes none.

    Args:
        settings: the broker, the queue and the signing key (to verify dead letters).
        limit: at most this many.
        on_unreadable: told of each dead letter that cannot be read; by default they are
            logged (WARNING). Either way they are left out and the others listed.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    # Ordered by the time of dead-lettering, queue order breaking ties. Queue order alone
    # is not stable across listings: a classic queue puts returned messages back where
    # they were, but a quorum queue (RabbitMQ 3.10) gives more than 32 back in hash order
    # when the channel closes, and even one-by-one nacks come out reordered after a few
    # passes. Sorting makes two listings agree.
    oldest: list[tuple[float, int, DeadLetter]] = []  # a max-heap through negated keys
    async with open_dead_letters(settings) as dead:
        while (taken := await dead.take()) is not None:
            letter = taken.letter
            if letter is None:
                _tell_unreadable(taken, on_unreadable)
                continue
            failed_at = letter.failed_at.timestamp() if letter.failed_at else -math.inf
            entry = (-failed_at, -taken.position, letter)
            if limit is None or len(oldest) < limit:
                heapq.heappush(oldest, entry)
            elif limit > 0:
                heapq.heappushpop(oldest, entry)
    return [letter for _, _, letter in sorted(oldest, reverse=True)]


async def find_dead_letter(
    settings: QueueSettings,
    job_id: str,
    *,
    prefix: bool = False,
    on_unreadable: OnUnreadable | None = None,
) -> DeadLetter | None:
    """The dead letter of job ``job_id``, or ``None``; removes none.

    Args:
        settings: the broker, the queue and the signing key (to verify dead letters).
        job_id: the job id.
        prefix: when no job has that exact id, accept the one job whose id starts with
            it (``job_id`` of at least ``MIN_PREFIX_LENGTH`` characters).
        on_unreadable: as for ``list_dead_letters``.

    Raises:
        AmbiguousJobIdError: ``prefix`` and the ids of several jobs start with it.
        QueueUnavailableError: the broker could not be reached.
    """
    candidates: dict[str, DeadLetter] = {}
    async with open_dead_letters(settings) as dead:
        while (taken := await dead.take()) is not None:
            letter = taken.letter
            if letter is None:
                _tell_unreadable(taken, on_unreadable)
            elif letter.job_id == job_id:
                return letter
            elif prefix and _starts(letter.job_id, job_id):
                candidates.setdefault(letter.job_id or "", letter)
    if len(candidates) > 1:
        raise AmbiguousJobIdError({job_id: tuple(sorted(candidates))})
    return next(iter(candidates.values()), None)


async def count_dead_letters(settings: QueueSettings) -> int:
    """How many dead letters wait (not counting those another reader holds).

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    async with open_dead_letters(settings) as dead:
        return dead.count


async def requeue_dead_letters(
    settings: QueueSettings,
    job_ids: Collection[str] | None,
    *,
    force: bool = False,
    prefixes: bool = False,
) -> RequeueReport:
    """Put dead letters back into the jobs queue (all of them when ``job_ids`` is ``None``).

    Each job keeps its id and arguments, restarts at attempt 1 and is due at once. It is
    published through ``Publisher`` (confirmed, signed with ``ASYNC_FARM_SIGNING_KEY`` if
    set), and its dead letter is removed only once the broker confirmed the new message:
    a failure in between leaves the job in both queues, never in neither.

    Dead letters stay where they are when they are not job envelopes, when they were
    dead-lettered for a wrong signature, and, with a signing key, when nothing shows
    that the job was ever signed with it: neither its own signature nor a dead letter
    that a worker holding the key signed. Requeuing those would sign, and so vouch for,
    a job that anyone able to publish to the broker could have written. ``force``
    requeues them anyway (the report lists them in ``forced``).

    Args:
        settings: the broker, the queue and the signing key.
        job_ids: the jobs to requeue; ``None`` for every dead letter.
        force: requeue dead letters of unsigned or wrongly signed jobs too.
        prefixes: an id that no job has exactly stands for the one job whose id starts
            with it (at least ``MIN_PREFIX_LENGTH`` characters).

    Raises:
        AmbiguousJobIdError: ``prefixes`` and a prefix matches several jobs; then nothing
            was requeued.
        QueueUnavailableError: the broker could not be reached or did not confirm; what
            was requeued before stays requeued.
        QueueConfigurationError: the jobs queue exists with other arguments.
    """
    wanted = None if job_ids is None else set(job_ids)
    key = settings.signing_key
    publisher = Publisher(
        settings.rabbitmq_url.get_secret_value(),
        redacted_url=settings.redacted_rabbitmq_url,
        topology=Topology.from_settings(settings),
        timeout_s=settings.connect_timeout_s,
        signing_key=None if key is None else key.get_secret_value().encode(),
        connection_name="fast-app dlq requeue",
    )
    requeuing = _Requeuing(publisher, signing=key is not None, force=force)
    try:
        async with open_dead_letters(settings) as dead:
            matches: list[TakenDeadLetter] = []
            while (taken := await dead.take()) is not None:
                if taken.letter is None:
                    requeuing.unreadable.append(_unreadable(taken))
                elif wanted is None:
                    await requeuing.settle(taken)
                else:
                    # Not acked unless it is one asked for: given back when the connection
                    # closes. Those asked for are requeued once every id is resolved.
                    matches.append(taken)
            if wanted is not None:
                chosen = _resolve(matches, wanted, prefixes=prefixes, found=requeuing.found)
                for taken in chosen:
                    if dead.cut_short_at is None:
                        await requeuing.settle(taken)
                    else:  # the connection is gone: they cannot be acknowledged any more
                        requeuing.not_reached(taken, dead.cut_short_at)
    finally:
        await publisher.close()
    not_found = () if wanted is None else tuple(sorted(wanted - requeuing.found))
    return requeuing.report(not_found)


def _resolve(
    taken: list[TakenDeadLetter], wanted: set[str], *, prefixes: bool, found: set[str]
) -> list[TakenDeadLetter]:
    """Of ``taken``, those ``wanted`` names, in queue order; adds to ``found`` what was.

    Raises:
        AmbiguousJobIdError: a prefix matches several jobs.
    """
    chosen = [t for t in taken if t.letter is not None and t.letter.job_id in wanted]
    exact = {t.letter.job_id for t in chosen if t.letter is not None}
    ambiguous: dict[str, tuple[str, ...]] = {}
    for prefix in sorted(wanted - exact) if prefixes else ():
        matching = [t for t in taken if t.letter is not None and _starts(t.letter.job_id, prefix)]
        job_ids = sorted({t.letter.job_id or "" for t in matching if t.letter is not None})
        if len(job_ids) > 1:
            ambiguous[prefix] = tuple(job_ids)
        elif job_ids:
            found.add(prefix)
            chosen += matching
    if ambiguous:
        raise AmbiguousJobIdError(ambiguous)
    unique = {t.position: t for t in chosen}  # two prefixes may name the same job
    return [unique[position] for position in sorted(unique)]


@dataclass(frozen=True)
class _Refusal:
    """Why a job envelope stays in the dead-letter queue unless forced."""

    skipped: str  # why it stays
    forced: str  # the warning when ``force`` requeues it anyway


_BAD_SIGNATURE = _Refusal(
    "its signature was wrong (requeuing would sign it); --force to requeue anyway",
    "its signature was wrong; it is requeued anyway (signed, if ASYNC_FARM_SIGNING_KEY "
    "is set) and will run",
)
_UNSIGNED = _Refusal(
    "its job was never signed with ASYNC_FARM_SIGNING_KEY: requeuing would sign it; "
    "--force to requeue anyway",
    "its job was never signed with ASYNC_FARM_SIGNING_KEY; it is requeued signed and will "
    "run as if a trusted publisher had queued it",
)


def _refusal(letter: DeadLetter, *, signing: bool) -> _Refusal | None:
    """Why requeuing ``letter``'s job would vouch for what nobody vouched for, if it would."""
    if letter.reason == DeadReason.BAD_SIGNATURE:
        return _BAD_SIGNATURE
    if signing and not letter.job_signed:
        return _UNSIGNED
    return None


class _Requeuing:
    """One ``requeue``: publishes jobs, acks their dead letters, and keeps the tally."""

    def __init__(self, publisher: Publisher, *, signing: bool, force: bool) -> None:
        self._publisher = publisher
        self._signing = signing
        self._force = force
        self.requeued: dict[str, None] = {}  # ordered, and quick to search
        self.duplicates: list[str] = []
        self.skipped: list[SkippedDeadLetter] = []
        self.forced: list[ForcedRequeue] = []
        self.unreadable: list[SkippedDeadLetter] = []
        self.found: set[str] = set()

    async def settle(self, taken: TakenDeadLetter) -> None:
        """Requeue the job of a dead letter read, or leave it and say why."""
        letter, envelope, message = taken.letter, taken.envelope, taken.message
        if letter is None or message is None:
            return
        if letter.job_id is not None:
            self.found.add(letter.job_id)
        if letter.job_id in self.requeued:
            # The same job dead-lettered twice (an ack lost on the way): run it once.
            await message.ack()
            self.duplicates.append(letter.job_id)
            return
        if envelope is None:
            self.skipped.append(SkippedDeadLetter(letter.job_id, "not a valid job envelope"))
            return
        refusal = _refusal(letter, signing=self._signing)
        if refusal is not None and not self._force:
            self.skipped.append(SkippedDeadLetter(letter.job_id, refusal.skipped))
            return
        fresh = msgspec.structs.replace(envelope, attempt=1, not_before=None)
        try:
            body = encode_envelope(fresh)
        except Exception as error:  # arguments nested deeper than the encoder goes
            reason = f"cannot be encoded again ({type(error).__name__})"
            self.skipped.append(SkippedDeadLetter(letter.job_id, reason))
            return
        # The requeued run continues the job's trace (its first enqueue's). Trace headers
        # are text; anything else under their names is not worth a failed publish.
        trace = {
            name: value
            for name, value in (trace_headers(message.headers) or {}).items()
            if isinstance(value, str)
        }
        await self._publisher.publish(body, fresh, extra_headers=trace or None)
        await message.ack()  # only now: the broker has stored the new job
        self.requeued[fresh.id] = None
        if refusal is not None:
            self.forced.append(ForcedRequeue(fresh.id, refusal.forced))

    def not_reached(self, taken: TakenDeadLetter, cut_short_at: int) -> None:
        """Leave a dead letter asked for that can no longer be acknowledged."""
        if taken.letter is not None and taken.letter.job_id is not None:
            self.found.add(taken.letter.job_id)
            reason = f"not requeued: reading stopped at dead letter #{cut_short_at}"
            self.skipped.append(SkippedDeadLetter(taken.letter.job_id, reason))

    def report(self, not_found: tuple[str, ...]) -> RequeueReport:
        """What was done."""
        return RequeueReport(
            requeued=tuple(self.requeued),
            duplicates_removed=tuple(self.duplicates),
            skipped=tuple(self.skipped),
            not_found=not_found,
            forced=tuple(self.forced),
            unreadable=tuple(self.unreadable),
        )


def _starts(job_id: str | None, prefix: str) -> bool:
    """Whether ``prefix`` is long enough to stand for ``job_id`` and starts it."""
    return job_id is not None and len(prefix) >= MIN_PREFIX_LENGTH and job_id.startswith(prefix)


def _unreadable(taken: TakenDeadLetter) -> SkippedDeadLetter:
    return SkippedDeadLetter(None, f"unreadable ({taken.problem})", taken.position)


def _tell_unreadable(taken: TakenDeadLetter, on_unreadable: OnUnreadable | None) -> None:
    skipped = _unreadable(taken)
    if on_unreadable is not None:
        on_unreadable(skipped)
    else:
        logger.warning("skipped dead letter #%d: %s", skipped.position, skipped.reason)


async def purge_dead_letters(settings: QueueSettings) -> int:
    """Delete every dead letter; return how many there were.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    async with open_dead_letters(settings) as dead:
        return await dead.purge()
