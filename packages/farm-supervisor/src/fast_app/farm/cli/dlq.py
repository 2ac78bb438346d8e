"""``fast-app dlq list|show|requeue|purge``: the command line of the dead-letter API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator

from fast_app.core.queue.errors import QueueConfigurationError, QueueUnavailableError
from fast_app.core.queue.queues import check_queue_name
from fast_app.core.queue.settings import QueueSettings, get_settings
from fast_app.farm.broker_queues import known_queues
from fast_app.farm.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from fast_app.farm.dead_letters import (
    MIN_PREFIX_LENGTH,
    AmbiguousJobIdError,
    DeadLetter,
    DeadLetterFilter,
    SkippedDeadLetter,
    count_dead_letters,
    find_dead_letter,
    list_dead_letters,
    parse_since,
    purge_dead_letters,
    purge_matching_dead_letters,
    requeue_dead_letters,
)
from fast_app.farm.dead_letters import _format as fmt
from fast_app.farm.errors import FarmConfigurationError
from fast_app.farm.printable import printable
from fast_app.farm.settings import load_farm_settings

__all__ = ["add_dlq_parser", "run_dlq"]


def add_dlq_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq`` and its commands to the ``fast-app`` parser (run them with ``run_dlq``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--queue",
        dest="queue_names",
        metavar="NAME",
        action="append",
        help=(
            "only the dead letters of this jobs queue (NAME.dead); repeat it or separate "
            "names with commas (default: every queue the farm knows: QUEUE_NAME, the "
            "queues of FARM_QUEUES and the targets of QUEUE_ROUTES)"
        ),
    )
    matching = argparse.ArgumentParser(add_help=False)
    criteria = matching.add_argument_group(
        "filter", "which dead letters (every criterion given must hold)"
    )
    criteria.add_argument(
        "--function",
        metavar="PATH",
        help="a dotted prefix of the job's function (app.reports), or a glob (*.send_*)",
    )
    criteria.add_argument("--reason", metavar="REASON", help="failed, soft_timeout, invalid...")
    criteria.add_argument(
        "--grep",
        metavar="TEXT",
        help="text in the error, the traceback or the arguments (any case)",
    )
    criteria.add_argument(
        "--since",
        metavar="WHEN",
        help="dead-lettered since: 90s, 15m, 1h, 2d, 1w ago, or an ISO 8601 time",
    )
    dlq = commands.add_parser(
        "dlq",
        help="inspect, requeue and purge dead-lettered jobs",
        description=(
            "Dead letters of the jobs queues (each queue's <queue>.dead): by default of "
            "every queue the farm knows (QUEUE_NAME, FARM_QUEUES, QUEUE_ROUTES' targets), "
            "or of those given with --queue. The broker comes from RABBITMQ_URL. A "
            "requeued job goes back to the queue whose dead letters held it."
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = actions.add_parser(
        "list",
        parents=[common, matching],
        help="one line per dead letter, oldest first (removes none)",
    )
    listing.add_argument("--limit", type=_positive, metavar="N", help="the N oldest only")
    listing.add_argument("--json", action="store_true", help="a JSON array with every field")
    show = actions.add_parser(
        "show", parents=[common], help="everything about one dead letter (removes none)"
    )
    show.add_argument(
        "job_id", metavar="JOB_ID", help=f"a job id, or a unique prefix of {MIN_PREFIX_LENGTH}+"
    )
    show.add_argument("--json", action="store_true", help="a JSON object with every field")
    requeue = actions.add_parser(
        "requeue",
        parents=[common, matching],
        help="put dead letters back into their jobs queues, from attempt 1",
        description=(
            "Requeue the given jobs (ids, or unique prefixes of "
            f"{MIN_PREFIX_LENGTH}+ characters, in any queue read), every dead letter "
            "with --all, or those the filter matches with --match; each job goes back to "
            "the queue whose dead letters held it. With "
            "ASYNC_FARM_SIGNING_KEY set, only jobs known to have been signed with it."
        ),
    )
    requeue.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    requeue.add_argument("--all", dest="requeue_all", action="store_true", help="all of them")
    requeue.add_argument(
        "--match", action="store_true", help="those the filter options match; the others stay"
    )
    requeue.add_argument(
        "--force",
        action="store_true",
        help=(
            "also requeue jobs never signed with ASYNC_FARM_SIGNING_KEY or dead-lettered "
            "for a wrong signature (they will run: trust them first)"
        ),
    )
    purge = actions.add_parser(
        "purge",
        parents=[common, matching],
        help="delete every dead letter (of the queues read), or with --match those matched",
    )
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge.add_argument(
        "--match", action="store_true", help="only those the filter options match; others stay"
    )


def run_dlq(options: argparse.Namespace) -> int:
    """Run the ``dlq`` command parsed into ``options``; return the exit code.

    0 on success; 1 when a dead letter asked for is missing or stays, when a job id
    prefix is ambiguous (or the purge was not confirmed); 2 for bad arguments or
    settings, and when the broker is unreachable.
    """
    try:
        settings = get_settings()
        queues = _queues(settings, options.queue_names)
        where = _filter(options)
        bulk = options.dlq_command in {"requeue", "purge"}
        if bulk and (where is None) == options.match:
            # A forgotten --match must not turn "purge these" into "purge everything".
            _fail(
                f"{options.dlq_command}: --match and the filter options "
                "(--function, --reason, --grep, --since) go together"
            )
            return EXIT_USAGE
        options.where = where
        with _quiet_client_logs():
            return _COMMANDS[options.dlq_command](settings, queues, options)
    except AmbiguousJobIdError as error:
        _fail(str(error))
        return EXIT_FAILED
    except ValueError as error:  # a --since out of form
        _fail(str(error))
        return EXIT_USAGE
    except (QueueConfigurationError, QueueUnavailableError, FarmConfigurationError) as error:
        _fail(str(error))
        return EXIT_USAGE


def _list_command(
    settings: QueueSettings, queues: tuple[str, ...], options: argparse.Namespace
) -> int:
    letters = asyncio.run(
        list_dead_letters(
            settings,
            queues=queues,
            limit=options.limit,
            on_unreadable=_note_unreadable,
            where=options.where,
        )
    )
    if options.json:
        print(_json_array(letters))
    elif not letters:
        matching = "" if options.where is None else f" matching {options.where.describe()}"
        print(f"no dead letters{matching} in {_dead(queues)}")
    for letter in [] if options.json else letters:
        print(fmt.summary_line(letter))
    return EXIT_OK


def _show_command(
    settings: QueueSettings, queues: tuple[str, ...], options: argparse.Namespace
) -> int:
    letter = asyncio.run(
        find_dead_letter(
            settings,
            options.job_id,
            queues=queues,
            prefix=True,
            on_unreadable=_note_unreadable,
        )
    )
    if letter is None:
        _fail(f"no dead letter of job {printable(options.job_id)} in {_dead(queues)}")
        return EXIT_FAILED
    if not options.json:
        print(fmt.details(letter))
    elif (shown := _json_object(letter)) is not None:
        print(shown)
    else:
        return EXIT_FAILED
    return EXIT_OK


def _requeue_command(
    settings: QueueSettings, queues: tuple[str, ...], options: argparse.Namespace
) -> int:
    if options.requeue_all + bool(options.job_ids) + options.match != 1:
        _fail("requeue: give JOB_ID... or --all (one of them), or --match with a filter")
        return EXIT_USAGE
    job_ids = None if options.requeue_all or options.match else options.job_ids
    report = asyncio.run(
        requeue_dead_letters(
            settings,
            job_ids,
            queues=queues,
            force=options.force,
            prefixes=True,
            where=options.where,
        )
    )
    for job_id in report.requeued:
        # With one queue read there is only one place it can have gone back to.
        into = f" into {printable(report.requeued_to[job_id])}" if len(queues) > 1 else ""
        print(f"requeued {printable(job_id)}{into}")
    for forced in report.forced:
        _fail(f"WARNING: --force requeued {printable(forced.job_id)}: {forced.reason}")
    for job_id in report.duplicates_removed:
        print(f"removed a duplicate dead letter of {printable(job_id)}")
    for skipped in report.skipped:
        job = "(no job id)" if skipped.job_id is None else printable(skipped.job_id)
        print(f"skipped {job}: {printable(skipped.reason)}; left in place")
    for unreadable in report.unreadable:
        _note_unreadable(unreadable)
    for job_id in report.not_found:
        print(f"not found {printable(job_id)}")
    unreadable_count = f", {len(report.unreadable)} unreadable" if report.unreadable else ""
    print(
        f"{len(report.requeued)} requeued, {len(report.skipped)} skipped, "
        f"{len(report.not_found)} not found{unreadable_count}"
        + ("" if options.where is None else f", {report.left_alone} left alone (not matching)")
    )
    return EXIT_OK if report.complete else EXIT_FAILED


def _purge_command(
    settings: QueueSettings, queues: tuple[str, ...], options: argparse.Namespace
) -> int:
    dead = _dead(queues)
    if options.where is not None:
        return _purge_matching(settings, queues, options.where, yes=options.yes)
    if not options.yes:
        count = asyncio.run(count_dead_letters(settings, queues=queues))
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
    purged = asyncio.run(purge_dead_letters(settings, queues=queues))
    print(f"purged {purged} dead letters from {dead}")
    return EXIT_OK


def _purge_matching(
    settings: QueueSettings, queues: tuple[str, ...], where: DeadLetterFilter, *, yes: bool
) -> int:
    dead = _dead(queues)
    matching = f"matching {where.describe()}"
    if not yes:
        count = len(asyncio.run(list_dead_letters(settings, queues=queues, where=where)))
        if count == 0:
            print(f"no dead letters {matching} in {dead}")
            return EXIT_OK
        if not sys.stdin.isatty():
            _fail(f"not purging {count} dead letters {matching} from {dead}: confirm with --yes")
            return EXIT_FAILED
        print(f"Purge {count} dead letters {matching} from {dead}? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in {"y", "yes"}:
            print("nothing purged")
            return EXIT_FAILED
    report = asyncio.run(purge_matching_dead_letters(settings, where, queues=queues))
    for unreadable in report.unreadable:
        _note_unreadable(unreadable)
    print(
        f"purged {report.purged} dead letters {matching} from {dead}; "
        f"{report.left_alone} left alone (not matching)"
    )
    return EXIT_OK


_COMMANDS: dict[str, Callable[[QueueSettings, tuple[str, ...], argparse.Namespace], int]] = {
    "list": _list_command,
    "show": _show_command,
    "requeue": _requeue_command,
    "purge": _purge_command,
}


def _queues(settings: QueueSettings, given: list[str] | None) -> tuple[str, ...]:
    """The jobs queues to read: those of ``--queue``, else every queue the farm knows.

    Raises:
        QueueConfigurationError: a ``--queue`` name out of rule.
        FarmConfigurationError: without ``--queue``, invalid ``FARM_*`` settings.
    """
    if not given:
        return known_queues(settings, load_farm_settings())
    names: list[str] = []
    for name in (part.strip() for text in given for part in text.split(",")):
        try:
            names.append(check_queue_name(name))
        except ValueError as error:
            raise QueueConfigurationError(f"--queue {name!r}: {error}") from None
    return tuple(dict.fromkeys(names))


def _filter(options: argparse.Namespace) -> DeadLetterFilter | None:
    """The filter of ``--function``, ``--reason``, ``--grep``, ``--since``; ``None``
    without any.

    Raises:
        ValueError: a ``--since`` that is neither a duration nor a time.
    """
    if not any(getattr(options, name, None) for name in ("function", "reason", "grep", "since")):
        return None  # ``show`` has none of them
    since = options.since
    where = DeadLetterFilter(
        function=options.function or None,
        reason=options.reason or None,
        text=options.grep or None,
        since=None if since is None else _since(since),
    )
    return None if where.is_empty else where


def _since(text: str) -> dt.datetime:
    try:
        return parse_since(text, dt.datetime.now(dt.UTC))
    except ValueError as error:
        raise ValueError(f"--since: {error}") from None


def _dead(queues: tuple[str, ...]) -> str:
    return ", ".join(f"{printable(name)}.dead" for name in queues)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fail(message: str) -> None:
    print(f"fast-app dlq: {message}", file=sys.stderr)


def _note_unreadable(skipped: SkippedDeadLetter) -> None:
    _fail(f"skipped dead letter #{skipped.position}: {printable(skipped.reason)}")


def _json_object(letter: DeadLetter) -> str | None:
    """``letter`` as indented JSON; ``None`` after saying why it cannot be."""
    try:
        return json.dumps(fmt.as_json(letter), indent=2)
    except (RecursionError, ValueError, TypeError) as error:
        # Arguments nested about as deep as the decoder goes may be too deep for json.
        job = printable(letter.job_id or "(no job id)")
        _fail(f"skipped dead letter of job {job}: cannot be shown as JSON ({type(error).__name__})")
        return None


def _json_array(letters: list[DeadLetter]) -> str:
    """A JSON array of the dead letters that can be written as JSON (one by one)."""
    shown = [item for letter in letters if (item := _json_object(letter)) is not None]
    if not shown:
        return "[]"
    return "[\n" + ",\n".join(textwrap.indent(item, "  ") for item in shown) + "\n]"


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
