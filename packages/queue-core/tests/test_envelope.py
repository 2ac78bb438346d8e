"""The job format: one envelope, JSON on the wire, types restored from annotations."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import queue_core_jobs as jobs

from fast_app.core.context import context
from fast_app.core.queue import InvalidJobError, queue
from fast_app.core.queue.worker_side import (
    FORMAT_VERSION,
    decode_envelope,
    describe_function,
    prepare,
)


def _prepare(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return prepare(function, args, kwargs, max_payload_bytes=1 << 20, allow_unportable=False)


ROUND_TRIPS = [
    pytest.param(
        jobs.receive_datetime,
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
        id="aware-datetime",
    ),
    pytest.param(jobs.receive_datetime, dt.datetime(2024, 5, 6, 7, 8, 9), id="naive-datetime"),
    pytest.param(
        jobs.receive_datetime,
        dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        id="offset-datetime",
    ),
    pytest.param(jobs.receive_date, dt.date(2024, 2, 29), id="date"),
    pytest.param(jobs.receive_time, dt.time(23, 59, 58, 1000), id="time"),
    pytest.param(jobs.receive_uuid, uuid.UUID("66f2d3a1-0000-4000-8000-000000000001"), id="uuid"),
    pytest.param(jobs.receive_decimal, decimal.Decimal("12345.6789000"), id="decimal"),
    pytest.param(jobs.receive_bytes, bytes(range(256)), id="bytes"),
    pytest.param(jobs.receive_enum, jobs.Color.BLUE, id="enum"),
    pytest.param(jobs.receive_int_enum, jobs.Priority.HIGH, id="int-enum"),
    pytest.param(jobs.receive_dataclass, jobs.Point(3, 4.5), id="dataclass"),
    pytest.param(
        jobs.receive_model, jobs.Address(street="Main", since=dt.date(2020, 1, 1)), id="pydantic"
    ),
    pytest.param(jobs.receive_tuple, (7, "seven"), id="tuple"),
    pytest.param(jobs.receive_nested, {"a": [jobs.Point(1, 2.0), jobs.Point(3, 4.0)]}, id="nested"),
    pytest.param(jobs.receive_optional_model, None, id="optional-none"),
    pytest.param(
        jobs.receive_optional_model,
        jobs.Address(street="Side", since=dt.date(2021, 2, 3)),
        id="optional-model",
    ),
]


@pytest.mark.parametrize(("function", "value"), ROUND_TRIPS)
async def test_an_annotated_parameter_receives_its_type_again(function: Any, value: Any) -> None:
    await queue(function, value)

    received = jobs.calls[0]["value"]
    assert received == value
    assert type(received) is type(value)


async def test_json_native_values_arrive_unchanged() -> None:
    await queue(jobs.receive_plain, "text", 3, 2.5, True, None)
    await queue(jobs.receive_list_dict, [1, 2], {"nested": {"a": [1, None, "x"]}})

    assert jobs.calls[0]["value"] == ("text", 3, 2.5, True, None)
    assert jobs.calls[1]["value"] == ([1, 2], {"nested": {"a": [1, None, "x"]}})


async def test_int_for_a_float_parameter_arrives_as_float() -> None:
    await queue(jobs.receive_plain, "t", 1, 2, False, None)

    assert type(jobs.calls[0]["value"][2]) is float


async def test_star_args_and_star_kwargs_are_restored_by_their_annotations() -> None:
    address = jobs.Address(street="Main", since=dt.date(2020, 1, 1))

    await queue(jobs.receive_varargs, jobs.Point(1, 2.0), jobs.Point(3, 4.0), home=address)

    assert jobs.calls[0] == {
        "points": (jobs.Point(1, 2.0), jobs.Point(3, 4.0)),
        "addresses": {"home": address},
    }


async def test_unannotated_parameters_receive_the_json_form() -> None:
    await queue(jobs.record, dt.date(2024, 1, 1), jobs.Point(1, 2.0), (1, 2))

    assert jobs.calls[0]["args"] == ("2024-01-01", {"x": 1, "y": 2.0}, [1, 2])


def test_the_envelope_is_plain_json_with_every_field() -> None:
    context.set("request_id", "r-1")

    submission = _prepare(
        jobs.send_welcome_email, "u1", template="t", __soft_timeout_s=5, __hard_timeout_s=9
    )
    document = json.loads(submission.body)

    assert document == {
        "format": FORMAT_VERSION,
        "id": submission.envelope.id,
        "function": "queue_core_jobs.send_welcome_email",
        "args": ["u1"],
        "kwargs": {"template": "t"},
        "context": {"request_id": "r-1"},
        "options": {"soft_timeout_s": 5.0, "hard_timeout_s": 9.0},
        "enqueued_at": submission.envelope.enqueued_at,
        "attempt": 1,
        "not_before": None,
    }
    assert uuid.UUID(hex=document["id"]).version == 4


def test_the_context_snapshot_travels_with_its_types() -> None:
    tenant = uuid.uuid4()
    context.set("tenant", tenant)

    submission = _prepare(jobs.send_welcome_email, "u1")
    envelope = decode_envelope(submission.body)

    assert envelope.context == {"tenant": str(tenant)}


def test_every_job_gets_its_own_id() -> None:
    ids = {_prepare(jobs.send_welcome_email, "u1").envelope.id for _ in range(100)}

    assert len(ids) == 100


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"\x80\x04garbage", "not a job envelope", id="garbage-bytes"),
        pytest.param(b"cos\nsystem\n(S'echo owned'\ntR.", "not a job envelope", id="pickle"),
        pytest.param(b'["a", "list"]', "not a job envelope", id="wrong-shape"),
        pytest.param(
            b'{"format": 99, "id": "x"}', "unknown job format version 99", id="future-version"
        ),
        pytest.param(b'{"format": 1, "id": "x"}', "malformed job envelope", id="missing-fields"),
    ],
)
def test_anything_but_a_job_is_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(InvalidJobError, match=message):
        decode_envelope(body)


def test_unknown_fields_are_refused_rather_than_ignored() -> None:
    document = json.loads(_prepare(jobs.send_welcome_email, "u1").body)
    document["options"]["priority"] = 3

    with pytest.raises(InvalidJobError, match="priority"):
        decode_envelope(json.dumps(document).encode())


def test_a_value_that_does_not_fit_its_annotation_is_an_invalid_job() -> None:
    spec = describe_function(jobs.receive_uuid)

    with pytest.raises(InvalidJobError, match=r"argument 'value' of queue_core_jobs.receive_uuid"):
        spec.restore(["not-a-uuid"], {})


def test_arguments_that_do_not_bind_at_decode_time_are_an_invalid_job() -> None:
    spec = describe_function(jobs.send_welcome_email)

    with pytest.raises(InvalidJobError, match="arguments do not match"):
        spec.restore([], {"nobody": 1})


@pytest.mark.parametrize(
    "changes",
    [
        {"options": {"hard_timeout_s": -1}},
        {"options": {"soft_timeout_s": 30, "hard_timeout_s": 1e-300}},
        {"options": {"soft_timeout_s": 0}},
        {"options": {"delay_s": 1e300}},
        {"options": {"retries": 101}},
        {"attempt": 0},
        {"attempt": -(2**63)},
        {"attempt": 2**63 - 1},
        {"enqueued_at": 1e300},
        {"not_before": -1},
    ],
)
def test_a_forged_envelope_is_held_to_what_queue_accepts(changes: dict[str, object]) -> None:
    # Given the JSON of a valid job, with options or counters queue() would refuse
    job = {
        "format": 1,
        "id": "a" * 32,
        "function": "app.jobs.work",
        "args": [],
        "kwargs": {},
        "context": {},
        "options": {},
        "enqueued_at": 1_700_000_000.0,
        **changes,
    }

    # Then a worker decoding it refuses it as invalid (it never runs)
    with pytest.raises(InvalidJobError):
        decode_envelope(json.dumps(job).encode())


def test_a_string_of_invalid_utf8_is_an_invalid_job() -> None:
    with pytest.raises(InvalidJobError, match="not a job envelope"):
        decode_envelope(b'{"format": 1, "id": "\xff\xfe"}')
