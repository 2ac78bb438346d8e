"""DeadLetterFilter: which dead letters a filter picks, without a broker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fast_app.farm.dead_letters import DeadLetter, DeadLetterFilter, parse_query, parse_since

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)


def letter(**fields: Any) -> DeadLetter:
    values: dict[str, Any] = {
        "job_id": "job-1",
        "function": "app.reports.build",
        "reason": "failed",
        "error_type": "builtins.ValueError",
        "error": "bad input",
        "traceback": "Traceback (most recent call last):\nValueError: bad input\n",
        "attempts": 1,
        "worker": "host-1",
        "failed_at": NOW - dt.timedelta(minutes=30),
        "body": b"{}",
        "args": ["customer-42"],
        "kwargs": {"region": "EU"},
        "queue": "emails",
    }
    values.update(fields)
    return DeadLetter(**values)


@pytest.mark.parametrize(
    ("pattern", "function", "expected"),
    [
        ("app.reports", "app.reports.build", True),
        ("app.reports", "app.reports", True),
        ("app.reports.", "app.reports.build", True),
        ("app.reports", "app.reports_old.build", False),
        ("app.reports", "app.emails.send", False),
        ("*.build", "app.reports.build", True),
        ("app.*.send_?", "app.emails.send_a", True),
        ("app.*.send_?", "app.emails.send_all", False),
        ("app.reports", None, False),
    ],
)
def test_function_is_a_dotted_prefix_or_a_glob(
    pattern: str, function: str | None, expected: bool
) -> None:
    assert DeadLetterFilter(function=pattern).matches(letter(function=function)) is expected


def test_reason_is_exact_in_any_case() -> None:
    assert DeadLetterFilter(reason="FAILED").matches(letter())
    assert not DeadLetterFilter(reason="fail").matches(letter())
    assert not DeadLetterFilter(reason="failed").matches(letter(reason=None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BAD INPUT", True),  # the error message, any case
        ("valueerror", True),  # the error type
        ("most recent call", True),  # the traceback
        ("customer-42", True),  # a positional argument
        ('"region": "eu"', True),  # a keyword argument
        ("timeout", False),
    ],
)
def test_text_is_found_in_the_error_traceback_and_arguments(text: str, expected: bool) -> None:
    assert DeadLetterFilter(text=text).matches(letter()) is expected


def test_text_reads_a_message_that_is_not_a_job_envelope() -> None:
    raw = letter(args=None, kwargs=None, error=None, traceback=None, error_type=None)
    assert not DeadLetterFilter(text="x").matches(raw)
    assert DeadLetterFilter(reason="failed").matches(raw)


def test_since_keeps_what_failed_at_or_after_it_and_drops_letters_without_a_time() -> None:
    cutoff = NOW - dt.timedelta(hours=1)
    assert DeadLetterFilter(since=cutoff).matches(letter())
    assert DeadLetterFilter(since=cutoff).matches(letter(failed_at=cutoff))
    assert not DeadLetterFilter(since=cutoff).matches(letter(failed_at=NOW - dt.timedelta(hours=2)))
    assert not DeadLetterFilter(since=cutoff).matches(letter(failed_at=None))


def test_every_criterion_must_hold() -> None:
    where = DeadLetterFilter(function="app.reports", reason="failed", queue="emails", text="bad")
    assert where.matches(letter())
    assert not where.matches(letter(queue="reports"))
    assert not where.matches(letter(reason="soft_timeout"))
    assert not where.matches(letter(error="worse", traceback=None))


def test_job_ids_restrict_to_those_jobs() -> None:
    where = DeadLetterFilter(job_ids=frozenset({"job-1"}))
    assert where.select([letter(), letter(job_id="job-2"), letter(job_id=None)]) == [letter()]


def test_an_empty_filter_matches_everything_and_says_so() -> None:
    assert DeadLetterFilter().is_empty
    assert DeadLetterFilter().matches(letter(function=None, reason=None, failed_at=None))
    assert DeadLetterFilter().describe() == "everything"
    assert not DeadLetterFilter(reason="failed").is_empty


def test_describe_reads_like_the_options() -> None:
    where = DeadLetterFilter(function="app.reports", reason="failed", text="timeout")
    assert where.describe() == "function=app.reports reason=failed grep='timeout'"


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("15m", dt.timedelta(minutes=15)),
        ("1h", dt.timedelta(hours=1)),
        ("1.5H", dt.timedelta(minutes=90)),
        ("2d", dt.timedelta(days=2)),
        ("1w", dt.timedelta(weeks=1)),
    ],
)
def test_since_takes_a_duration_before_now(text: str, ago: dt.timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_takes_an_iso_time_utc_unless_it_says_otherwise() -> None:
    assert parse_since("2026-01-02T10:00", NOW) == dt.datetime(2026, 1, 2, 10, tzinfo=dt.UTC)
    with_zone = parse_since("2026-01-02T10:00+02:00", NOW)
    assert with_zone == dt.datetime(2026, 1, 2, 8, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["yesterday", "1y", "-1h", ""])
def test_since_refuses_anything_else_and_says_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration \(90s, 15m, 1h, 2d, 1w\)"):
        parse_since(text, NOW)


def test_a_query_has_field_words_and_free_text() -> None:
    where = parse_query("function:app.reports  Reason:failed connection  refused since:1h", NOW)
    assert where == DeadLetterFilter(
        function="app.reports",
        reason="failed",
        text="connection refused",
        since=NOW - dt.timedelta(hours=1),
    )
    assert parse_query("queue:emails", NOW) == DeadLetterFilter(queue="emails")
    assert parse_query("   ", NOW).is_empty
    assert parse_query("http://host:80", NOW).text == "http://host:80"


def test_a_query_with_a_bad_since_is_refused() -> None:
    with pytest.raises(ValueError, match="since"):
        parse_query("since:soon", NOW)
