"""Named queues: a call names its queue (``__queue``) or a route gives it (``QUEUE_ROUTES``);
both drivers accept and check the same names, and the job knows its queue."""

from __future__ import annotations

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import JobValidationError, QueueConfigurationError, queue
from fast_app.core.queue.queues import QueueRoutes, check_queue_name


async def test_a_job_runs_from_the_queue_its_call_names() -> None:
    job = await queue(jobs.report_current_job, "named", __queue="reports")

    assert job.queue == "reports"
    assert jobs.calls[0]["job"].queue == "reports"


async def test_without_a_name_or_a_route_a_job_goes_to_queue_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "app.jobs")

    job = await queue(jobs.report_current_job, "default")

    assert job.queue == "app.jobs"
    assert jobs.calls[0]["job"].queue == "app.jobs"


async def test_routes_send_a_function_to_the_queue_of_its_longest_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a route for the module and a longer one for one of its functions
    monkeypatch.setenv(
        "QUEUE_ROUTES",
        "queue_core_jobs=slow, queue_core_jobs.send_welcome_email=emails",
    )

    emailed = await queue(jobs.send_welcome_email, "u1")
    other = await queue(jobs.record, 1)
    named = await queue(jobs.send_welcome_email, "u2", __queue="urgent")

    assert emailed.queue == "emails"
    assert other.queue == "slow"
    # an explicit __queue wins over the routes
    assert named.queue == "urgent"


@pytest.mark.parametrize(
    "name",
    ["", "has space", "x" * 201, "tab\t", "é", "reports.dead", "reports.delay.200ms", 7],
)
async def test_a_queue_name_out_of_rule_is_refused_before_anything_runs(name: object) -> None:
    with pytest.raises(JobValidationError, match="__queue"):
        await queue(jobs.record, 1, __queue=name)

    assert jobs.calls == []


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("app.reports", "not prefix=queue"),
        ("app.reports=", "not prefix=queue"),
        ("app reports=x", "not a module or function path"),
        ("app.reports=bad name", "queue name"),
        ("app.x=a,app.x=b", "routed twice"),
        ("app.x=jobs.dead", "companion"),
    ],
)
async def test_invalid_routes_are_a_configuration_error_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch, routes: str, problem: str
) -> None:
    monkeypatch.setenv("QUEUE_ROUTES", routes)

    with pytest.raises(QueueConfigurationError, match="QUEUE_ROUTES") as raised:
        await queue(jobs.record, 1)

    assert problem in str(raised.value)


def test_routes_match_whole_dotted_names_only() -> None:
    routes = QueueRoutes.parse("app.mail=emails,app=default_work")

    assert routes.queue_of("app.mail.send") == "emails"
    assert routes.queue_of("app.mail") == "emails"
    assert routes.queue_of("app.mailer.send") == "default_work"
    assert routes.queue_of("application.x") is None
    assert QueueRoutes.parse("  ").routes == ()


def test_queue_name_refuses_the_names_of_companion_queues() -> None:
    assert check_queue_name("emails.v2") == "emails.v2"
    for companion in ("a.dead", "a.dlx", "a.tombstones", "a.events", "a.control"):
        with pytest.raises(ValueError, match="companion"):
            check_queue_name(companion)
