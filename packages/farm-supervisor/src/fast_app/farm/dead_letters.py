"""Inspect and replay dead letters: ``fast-app dlq list|show|requeue|purge``.

The async functions are the API (for scripts and the TUI); ``add_dlq_parser`` and
``run_dlq`` put a command line on them.

Reading is non-destructive (see ``_dead_letters_broker``): only ``requeue`` and ``purge``
remove dead letters. A dead letter held by another ``dlq`` command at that moment is not
seen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import math
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import msgspec
from pydantic import ValidationError

from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.envelope import encode_envelope
from fast_app.core.queue.errors import QueueConfigurationError, QueueUnavailableError
from fast_app.core.queue.settings import QueueSettings, get_settings
from fast_app.core.queue.telemetry import trace_headers
from fast_app.farm import _dead_letters_format as fmt
from fast_app.farm._dead_letters_broker import DeadLetter, open_dead_letters, read_dead_letter
from fast_app.farm.worker._dead_letters import DeadReason

__all__ = [
    "DeadLetter",
    "RequeueReport",
    "SkippedDeadLetter",
    "add_dlq_parser",
    "count_dead_letters",
    "find_dead_letter",
    "list_dead_letters",
    "purge_dead_letters",
    "requeue_dead_letters",
    "run_dlq",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class SkippedDeadLetter:
    """A dead letter that ``requeue`` left in the dead-letter queue, and why."""

    job_id: str | None
    reason: str


@dataclass(frozen=True)
class RequeueReport:
    """What ``requeue_dead_letters`` did.

    Attributes:
        requeued: ids of the jobs put back into the jobs queue.
        duplicates_removed: ids of further dead letters of a requeued job, removed.
        skipped: dead letters that cannot be requeued; they stay.
        not_found: ids asked for that no dead letter has.
    """

    requeued: tuple[str, ...] = ()
    duplicates_removed: tuple[str, ...] = ()
    skipped: tuple[SkippedDeadLetter, ...] = ()
    not_found: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every dead letter asked for left the dead-letter queue."""
        return not self.skipped and not self.not_found


async def list_dead_letters(
    settings: QueueSettings, *, limit: int | None = None
) -> list[DeadLetter]:
    """The dead letters, oldest first (the ``limit`` oldest ones); removes none.

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
        position = 0
        while (message := await dead.take()) is not None:
            letter = read_dead_letter(message)[0]
            failed_at = letter.failed_at.timestamp() if letter.failed_at else -math.inf
            entry = (-failed_at, -position, letter)
            position += 1
            if limit is None or len(oldest) < limit:
                heapq.heappush(oldest, entry)
            elif limit > 0:
                heapq.heappushpop(oldest, entry)
    return [letter for _, _, letter in sorted(oldest, reverse=True)]


async def find_dead_letter(settings: QueueSettings, job_id: str) -> DeadLetter | None:
    """The dead letter of job ``job_id``, or ``None``; removes none.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    async with open_dead_letters(settings) as dead:
        while (message := await dead.take()) is not None:
            letter = read_dead_letter(message)[0]
            if letter.job_id == job_id:
                return letter
    return None


async def count_dead_letters(settings: QueueSettings) -> int:
    """How many dead letters wait (not counting those another reader holds).

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    async with open_dead_letters(settings) as dead:
        return dead.count


async def requeue_dead_letters(
    settings: QueueSettings, job_ids: Collection[str] | None
) -> RequeueReport:
    """Put dead letters back into the jobs queue (all of them when ``job_ids`` is ``None``).

    Each job keeps its id and arguments, restarts at attempt 1 and is due at once. It is
    published through ``Publisher`` (confirmed, signed with ``ASYNC_FARM_SIGNING_KEY`` if
    set), and its dead letter is removed only once the broker confirmed the new message:
    a failure in between leaves the job in both queues, never in neither. Dead letters
    that are not job envelopes, or whose signature was wrong (requeuing would sign a
    forged job), stay where they are.

    Raises:
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
    requeued: dict[str, None] = {}  # ordered, and quick to search
    duplicates: list[str] = []
    skipped: list[SkippedDeadLetter] = []
    found: set[str] = set()
    try:
        async with open_dead_letters(settings) as dead:
            while (message := await dead.take()) is not None:
                letter, envelope = read_dead_letter(message)
                if wanted is not None and letter.job_id not in wanted:
                    continue  # not acked: given back when the connection closes
                if letter.job_id is not None:
                    found.add(letter.job_id)
                if letter.job_id in requeued:
                    # The same job dead-lettered twice (an ack lost on the way): run it once.
                    await message.ack()
                    duplicates.append(letter.job_id)
                elif envelope is None:
                    skipped.append(SkippedDeadLetter(letter.job_id, "not a valid job envelope"))
                elif letter.reason == DeadReason.BAD_SIGNATURE:
                    reason = "its signature was wrong (requeuing would sign it)"
                    skipped.append(SkippedDeadLetter(letter.job_id, reason))
                else:
                    fresh = msgspec.structs.replace(envelope, attempt=1, not_before=None)
                    # The requeued run continues the job's trace (its first enqueue's).
                    await publisher.publish(
                        encode_envelope(fresh),
                        fresh,
                        extra_headers=trace_headers(message.headers),
                    )
                    await message.ack()  # only now: the broker has stored the new job
                    requeued[fresh.id] = None
    finally:
        await publisher.close()
    not_found = () if wanted is None else tuple(sorted(wanted - found))
    return RequeueReport(tuple(requeued), tuple(duplicates), tuple(skipped), not_found)


async def purge_dead_letters(settings: QueueSettings) -> int:
    """Delete every dead letter; return how many there were.

    Raises:
        QueueUnavailableError: the broker could not be reached.
    """
    async with open_dead_letters(settings) as dead:
        return await dead.purge()


# -- command line ---------------------------------------------------------------------


def add_dlq_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq`` and its commands to the ``fast-app`` parser (run them with ``run_dlq``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--queue", dest="queue_name", metavar="NAME", help="jobs queue (default: QUEUE_NAME)"
    )
    dlq = commands.add_parser(
        "dlq",
        help="inspect and replay dead-lettered jobs",
        description=(
            "Dead letters of the jobs queue (<queue>.dead). The broker comes from "
            "RABBITMQ_URL, the queue from QUEUE_NAME or --queue."
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = actions.add_parser(
        "list", parents=[common], help="one line per dead letter, oldest first (removes none)"
    )
    listing.add_argument("--limit", type=_positive, metavar="N", help="the N oldest only")
    listing.add_argument("--json", action="store_true", help="a JSON array with every field")
    show = actions.add_parser(
        "show", parents=[common], help="everything about one dead letter (removes none)"
    )
    show.add_argument("job_id", metavar="JOB_ID")
    show.add_argument("--json", action="store_true", help="a JSON object with every field")
    requeue = actions.add_parser(
        "requeue",
        parents=[common],
        help="put dead letters back into the jobs queue, from attempt 1",
        description="Requeue the given jobs, or every dead letter with --all.",
    )
    requeue.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    requeue.add_argument("--all", dest="requeue_all", action="store_true", help="all of them")
    purge = actions.add_parser("purge", parents=[common], help="delete every dead letter")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def run_dlq(options: argparse.Namespace) -> int:
    """Run the ``dlq`` command parsed into ``options``; return the exit code.

    0 on success; 1 when a dead letter asked for is missing or stays (or the purge was
    not confirmed); 2 for bad arguments or settings, and when the broker is unreachable.
    """
    try:
        settings = get_settings()
        if options.queue_name is not None:
            settings = _with_queue_name(settings, options.queue_name)
        with _quiet_client_logs():
            return _COMMANDS[options.dlq_command](settings, options)
    except (QueueConfigurationError, QueueUnavailableError) as error:
        _fail(str(error))
        return EXIT_USAGE


def _list_command(settings: QueueSettings, options: argparse.Namespace) -> int:
    letters = asyncio.run(list_dead_letters(settings, limit=options.limit))
    if options.json:
        print(json.dumps([fmt.as_json(letter) for letter in letters], indent=2))
    elif not letters:
        print(f"no dead letters in {_dead(settings)}")
    for letter in [] if options.json else letters:
        print(fmt.summary_line(letter))
    return EXIT_OK


def _show_command(settings: QueueSettings, options: argparse.Namespace) -> int:
    letter = asyncio.run(find_dead_letter(settings, options.job_id))
    if letter is None:
        _fail(f"no dead letter of job {options.job_id} in {_dead(settings)}")
        return EXIT_FAILED
    print(json.dumps(fmt.as_json(letter), indent=2) if options.json else fmt.details(letter))
    return EXIT_OK


def _requeue_command(settings: QueueSettings, options: argparse.Namespace) -> int:
    if options.requeue_all == bool(options.job_ids):
        _fail("requeue: give JOB_ID... or --all (one of them)")
        return EXIT_USAGE
    job_ids = None if options.requeue_all else options.job_ids
    report = asyncio.run(requeue_dead_letters(settings, job_ids))
    for job_id in report.requeued:
        print(f"requeued {job_id}")
    for job_id in report.duplicates_removed:
        print(f"removed a duplicate dead letter of {job_id}")
    for skipped in report.skipped:
        print(f"skipped {skipped.job_id or '(no job id)'}: {skipped.reason}; left in place")
    for job_id in report.not_found:
        print(f"not found {job_id}")
    print(
        f"{len(report.requeued)} requeued, {len(report.skipped)} skipped, "
        f"{len(report.not_found)} not found"
    )
    return EXIT_OK if report.complete else EXIT_FAILED


def _purge_command(settings: QueueSettings, options: argparse.Namespace) -> int:
    dead = _dead(settings)
    if not options.yes:
        count = asyncio.run(count_dead_letters(settings))
        if count == 0:
            print(f"no dead letters in {dead}")
            return EXIT_OK
        if not sys.stdin.isatty():
            _fail(f"not purging {count} dead letters from {dead}: confirm with --yes")
            return EXIT_FAILED
        print(f"Purge {count} dead letters from {dead}? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in {"y", "yes"}:
            print("nothing purged")
            return EXIT_FAILED
    purged = asyncio.run(purge_dead_letters(settings))
    print(f"purged {purged} dead letters from {dead}")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[QueueSettings, argparse.Namespace], int]] = {
    "list": _list_command,
    "show": _show_command,
    "requeue": _requeue_command,
    "purge": _purge_command,
}


def _with_queue_name(settings: QueueSettings, name: str) -> QueueSettings:
    # A validated copy rather than configure(): --queue changes this command only, and
    # keeps settings given in code (tests, a TUI) instead of re-reading the environment.
    try:
        return QueueSettings.model_validate({**dict(settings), "name": name})
    except ValidationError as error:
        problem = error.errors()[0]["msg"]
        raise QueueConfigurationError(f"--queue {name!r}: {problem}") from None


def _dead(settings: QueueSettings) -> str:
    return Topology.from_settings(settings).dead


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fail(message: str) -> None:
    print(f"fast-app dlq: {message}", file=sys.stderr)


@contextlib.contextmanager
def _quiet_client_logs() -> Iterator[None]:
    # aiormq logs each failed connection attempt itself; the command says it once, plainly.
    loggers = [logging.getLogger(name) for name in ("aiormq", "aio_pika")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# -- broker access ------------------------------------------------------------------
