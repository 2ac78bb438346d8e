"""The dead-letter API: list, find, count, requeue and purge dead letters.

For scripts and the dashboard; ``fast_app.farm.cli.dlq`` puts the ``fast-app dlq``
command line on it.

Each function reads the dead letters of the jobs queues it is given (``queues``; by
default ``QUEUE_NAME`` alone), each queue's from its own ``<queue>.dead``, and a requeued
job goes back to the queue whose dead letters held it.

Reading is non-destructive (see ``fast_app.farm.dead_letters._broker``): only
``requeue_dead_letters`` and ``purge_dead_letters`` remove dead letters. A dead letter
held by another reader at that moment is not seen. A dead letter that cannot be read at
all is passed over and reported by its position in the queue; it never stops the others
from being read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import math
from collections.abc import Collection, Sequence

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.dead_letters._broker import (
    DeadLetterQueue,
    TakenDeadLetter,
    open_dead_letters,
)
from fast_app.farm.dead_letters._requeuing import Requeuing
from fast_app.farm.dead_letters.filtering import DeadLetterFilter
from fast_app.farm.dead_letters.letter import DeadLetter
from fast_app.farm.dead_letters.outcomes import (
    AmbiguousJobIdError,
    ForcedRequeue,
    OnUnreadable,
    PurgeReport,
    RequeueReport,
    SkippedDeadLetter,
)

__all__ = [
    "MIN_PREFIX_LENGTH",
    "AmbiguousJobIdError",
    "ForcedRequeue",
    "DeadLetterFilter",
    "OnUnreadable",
    "PurgeReport",
    "RequeueReport",
    "SkippedDeadLetter",
    "count_dead_letters",
    "find_dead_letter",
    "list_dead_letters",
    "purge_dead_letters",
    "purge_matching_dead_letters",
    "requeue_dead_letters",
]

# The name the module had before it became a package: logging set up for it still applies.
logger = logging.getLogger("fast_app.farm.dead_letters")

#: Shortest job id prefix that ``show`` and ``requeue`` look up (when asked to).
MIN_PREFIX_LENGTH = 6


def _queue_names(settings: QueueSettings, queues: Sequence[str] | None) -> tuple[str, ...]:
    """The jobs queues to read: ``queues``, each once, or ``QUEUE_NAME``."""
    return (settings.name,) if queues is None else tuple(dict.fromkeys(queues))


async def list_dead_letters(
    settings: QueueSettings,
    *,
    queues: Sequence[str] | None = None,
    limit: int | None = None,
    on_unreadable: OnUnreadable | None = None,
    where: DeadLetterFilter | None = None,
) -> list[DeadLetter]:
    """The dead letters, oldest first (the ``limit`` oldest ones); removes none.

    Args:
        settings: the broker, the default queue and the signing key (to verify dead
            letters).
        queues: the jobs queues whose dead letters to read (default: ``QUEUE_NAME``);
            each dead letter says its queue (``DeadLetter.queue``).
        limit: at most this many.
        on_unreadable: told of each dead letter that cannot be read; by default they are
            logged (WARNING). Either way they are left out and the others listed.
        where: only the dead letters it matches (``limit`` counts those).

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    # Ordered by the time of dead-lettering, queue order breaking ties. Queue order alone
    # is not stable across listings: a classic queue puts returned messages back where
    # they were, but a quorum queue (RabbitMQ 3.10) gives more than 32 back in hash order
    # when the channel closes, and even one-by-one nacks come out reordered after a few
    # passes. Sorting makes two listings agree; across queues, the order of ``queues``
    # breaks ties.
    oldest: list[tuple[float, int, int, DeadLetter]] = []  # a max-heap, keys negated
    for index, name in enumerate(_queue_names(settings, queues)):
        async with open_dead_letters(settings, name) as dead:
            while (taken := await dead.take()) is not None:
                letter = taken.letter
                if letter is None:
                    _tell_unreadable(taken, on_unreadable)
                    continue
                if where is not None and not where.matches(letter):
                    continue
                failed_at = letter.failed_at.timestamp() if letter.failed_at else -math.inf
                entry = (-failed_at, -index, -taken.position, letter)
                if limit is None or len(oldest) < limit:
                    heapq.heappush(oldest, entry)
                elif limit > 0:
                    heapq.heappushpop(oldest, entry)
    return [letter for *_, letter in sorted(oldest, reverse=True)]


async def find_dead_letter(
    settings: QueueSettings,
    job_id: str,
    *,
    queues: Sequence[str] | None = None,
    prefix: bool = False,
    on_unreadable: OnUnreadable | None = None,
) -> DeadLetter | None:
    """The dead letter of job ``job_id``, or ``None``; removes none.

    Args:
        settings: the broker, the default queue and the signing key.
        job_id: the job id.
        queues: the jobs queues whose dead letters to search (default: ``QUEUE_NAME``);
            a job dead-lettered in several is found in the first of them.
        prefix: when no job has that exact id, accept the one job whose id starts with
            it (``job_id`` of at least ``MIN_PREFIX_LENGTH`` characters), in any queue.
        on_unreadable: as for ``list_dead_letters``.

    Raises:
        AmbiguousJobIdError: ``prefix`` and the ids of several jobs start with it.
        QueueUnavailableError: the broker could not be reached.
    """
    names = _queue_names(settings, queues)
    candidates: dict[str, list[DeadLetter]] = {}
    for name in names:
        async with open_dead_letters(settings, name) as dead:
            while (taken := await dead.take()) is not None:
                letter = taken.letter
                if letter is None:
                    _tell_unreadable(taken, on_unreadable)
                elif letter.job_id == job_id:
                    return letter
                elif prefix and _starts(letter.job_id, job_id):
                    candidates.setdefault(letter.job_id or "", []).append(letter)
    if len(candidates) > 1:
        found_in = {
            matched: tuple(dict.fromkeys(letter.queue or "" for letter in letters))
            for matched, letters in candidates.items()
        }
        raise AmbiguousJobIdError(
            {job_id: tuple(sorted(candidates))}, found_in if len(names) > 1 else None
        )
    return next((letters[0] for letters in candidates.values()), None)


async def count_dead_letters(
    settings: QueueSettings, *, queues: Sequence[str] | None = None
) -> int:
    """How many dead letters wait in ``queues`` (default: ``QUEUE_NAME``), not counting
    those another reader holds.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    count = 0
    for name in _queue_names(settings, queues):
        async with open_dead_letters(settings, name) as dead:
            count += dead.count
    return count


async def requeue_dead_letters(
    settings: QueueSettings,
    job_ids: Collection[str] | None,
    *,
    queues: Sequence[str] | None = None,
    force: bool = False,
    prefixes: bool = False,
    where: DeadLetterFilter | None = None,
) -> RequeueReport:
    """Put dead letters back into their jobs queues (all of them when ``job_ids`` is
    ``None``).

    Each job goes back to the queue whose dead letters held it (``emails.dead`` →
    ``emails``), keeps its id and arguments, restarts at attempt 1 and is due at once. It
    is published through ``Publisher`` (confirmed, signed with ``ASYNC_FARM_SIGNING_KEY``
    if set), and its dead letter is removed only once the broker confirmed the new
    message: a failure in between leaves the job in both queues, never in neither.

    Dead letters stay where they are when they are not job envelopes, when they were
    dead-lettered for a wrong signature, and, with a signing key, when nothing shows
    that the job was ever signed with it: neither its own signature nor a dead letter
    that a worker holding the key signed. Requeuing those would sign, and so vouch for,
    a job that anyone able to publish to the broker could have written. ``force``
    requeues them anyway (the report lists them in ``forced``).

    Args:
        settings: the broker, the default queue and the signing key.
        job_ids: the jobs to requeue; ``None`` for every dead letter.
        queues: the jobs queues whose dead letters to requeue (default: ``QUEUE_NAME``).
            A job dead-lettered in several of them is requeued once, to the first.
        force: requeue dead letters of unsigned or wrongly signed jobs too.
        prefixes: an id that no job has exactly stands for the one job whose id starts
            with it (at least ``MIN_PREFIX_LENGTH`` characters), in any of the queues.
        where: only the dead letters it matches (of all of them, or of ``job_ids``);
            the report counts the others in ``left_alone``.

    Raises:
        AmbiguousJobIdError: ``prefixes`` and a prefix matches several jobs; then nothing
            was requeued.
        QueueUnavailableError: the broker could not be reached or did not confirm; what
            was requeued before stays requeued.
        QueueConfigurationError: the jobs queue exists with other arguments.
    """
    wanted = None if job_ids is None else set(job_ids)
    names = _queue_names(settings, queues)
    requeuing = Requeuing(settings, force=force)
    left_alone = 0
    try:
        if wanted is None:
            for name in names:
                async with open_dead_letters(settings, name) as dead:
                    while (taken := await dead.take()) is not None:
                        if taken.letter is None:
                            requeuing.unreadable.append(_unreadable(taken))
                        elif where is None or where.matches(taken.letter):
                            await requeuing.settle(taken)
                        else:
                            left_alone += 1
        else:
            left_alone = await _requeue_wanted(
                settings, names, wanted, requeuing, prefixes=prefixes, where=where
            )
    finally:
        await requeuing.close()
    not_found = () if wanted is None else tuple(sorted(wanted - requeuing.found))
    return dataclasses.replace(requeuing.report(not_found), left_alone=left_alone)


async def _requeue_wanted(
    settings: QueueSettings,
    names: tuple[str, ...],
    wanted: set[str],
    requeuing: Requeuing,
    *,
    prefixes: bool,
    where: DeadLetterFilter | None,
) -> int:
    """Requeue the dead letters ``wanted`` names that ``where`` matches, once every id is
    resolved in every queue; return how many it did not match.

    Raises:
        AmbiguousJobIdError: a prefix matches several jobs; then nothing was requeued.
    """
    # Every queue stays open until then: what is taken and not acked goes back to its
    # queue when its connection closes.
    async with contextlib.AsyncExitStack() as opened:
        matches: list[TakenDeadLetter] = []
        readers: dict[str, DeadLetterQueue] = {}
        for name in names:
            dead = readers[name] = await opened.enter_async_context(
                open_dead_letters(settings, name)
            )
            while (taken := await dead.take()) is not None:
                if taken.letter is None:
                    requeuing.unreadable.append(_unreadable(taken))
                else:
                    matches.append(taken)
        chosen = _resolve(
            matches, wanted, prefixes=prefixes, found=requeuing.found, several_queues=len(names) > 1
        )
        matching = [t for t in chosen if where is None or (t.letter and where.matches(t.letter))]
        for taken in matching:
            cut_short_at = readers[taken.queue].cut_short_at
            if cut_short_at is None:
                await requeuing.settle(taken)
            else:  # the connection is gone: they cannot be acknowledged any more
                requeuing.not_reached(taken, cut_short_at)
        return len(chosen) - len(matching)


def _resolve(
    taken: list[TakenDeadLetter],
    wanted: set[str],
    *,
    prefixes: bool,
    found: set[str],
    several_queues: bool = False,
) -> list[TakenDeadLetter]:
    """Of ``taken``, those ``wanted`` names, in the order taken; adds to ``found`` what was.

    Raises:
        AmbiguousJobIdError: a prefix matches several jobs (naming their queues when
            ``several_queues`` were read).
    """
    chosen = [t for t in taken if t.letter is not None and t.letter.job_id in wanted]
    exact = {t.letter.job_id for t in chosen if t.letter is not None}
    ambiguous: dict[str, tuple[str, ...]] = {}
    found_in: dict[str, tuple[str, ...]] = {}
    for prefix in sorted(wanted - exact) if prefixes else ():
        matching = [t for t in taken if t.letter is not None and _starts(t.letter.job_id, prefix)]
        job_ids = sorted({t.letter.job_id or "" for t in matching if t.letter is not None})
        if len(job_ids) > 1:
            ambiguous[prefix] = tuple(job_ids)
            for job_id in job_ids:
                holding = (t.queue for t in matching if t.letter and t.letter.job_id == job_id)
                found_in[job_id] = tuple(dict.fromkeys(holding))
        elif job_ids:
            found.add(prefix)
            chosen += matching
    if ambiguous:
        raise AmbiguousJobIdError(ambiguous, found_in if several_queues else None)
    # Two prefixes may name the same job: each dead letter once, in the order taken.
    keys = {(t.queue, t.position) for t in chosen}
    return [t for t in taken if (t.queue, t.position) in keys]


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


async def purge_dead_letters(
    settings: QueueSettings, *, queues: Sequence[str] | None = None
) -> int:
    """Delete every dead letter of ``queues`` (default: ``QUEUE_NAME``); return how many
    there were.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    purged = 0
    for name in _queue_names(settings, queues):
        async with open_dead_letters(settings, name) as dead:
            purged += await dead.purge()
    return purged


async def purge_matching_dead_letters(
    settings: QueueSettings, where: DeadLetterFilter, *, queues: Sequence[str] | None = None
) -> PurgeReport:
    """Delete the dead letters of ``queues`` (default: ``QUEUE_NAME``) that ``where``
    matches; the others stay, and so do those that cannot be read.

    Raises:
        QueueUnavailableError: the broker could not be reached; what was deleted before
            stays deleted.
    """
    purged = left_alone = 0
    unreadable: list[SkippedDeadLetter] = []
    for name in _queue_names(settings, queues):
        async with open_dead_letters(settings, name) as dead:
            while (taken := await dead.take()) is not None:
                if taken.letter is None or taken.message is None:
                    unreadable.append(_unreadable(taken))
                elif where.matches(taken.letter):
                    # Acked one by one as read: the others go back when the connection
                    # closes, so a failure part-way deletes no more than it matched.
                    await taken.message.ack()
                    purged += 1
                else:
                    left_alone += 1
    return PurgeReport(purged, left_alone, tuple(unreadable))
