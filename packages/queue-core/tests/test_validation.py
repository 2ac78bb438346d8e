"""queue() refuses, with a message naming the problem, every call that cannot become a job."""

from __future__ import annotations

import functools
import types
from typing import Any

import pytest
import queue_core_jobs as jobs

from fast_app.core.context import context
from fast_app.core.queue import (
    JobPortabilityWarning,
    JobValidationError,
    PayloadTooLargeError,
    UnencodableArgumentError,
    configure,
    queue,
)


def _in_main() -> types.FunctionType:
    """A copy of a job function that claims to live in __main__, as a script's would."""
    source = jobs.record
    clone = types.FunctionType(
        source.__code__, source.__globals__, "record", source.__defaults__, source.__closure__
    )
    clone.__module__ = "__main__"
    clone.__qualname__ = "record"
    return clone


def _nested() -> Any:
    async def inner() -> None:
        jobs.calls.append({"inner": True})

    return inner


UNPORTABLE = [
    pytest.param(lambda: None, "is a lambda", id="lambda"),
    pytest.param(_nested(), "nested", id="nested"),
    pytest.param(_in_main(), "__main__", id="main"),
    pytest.param(jobs.Mailer.static_send, "inside a class", id="class-attribute"),
]


@pytest.mark.parametrize(("function", "problem"), UNPORTABLE)
async def test_unportable_functions_warn_in_sync_mode_and_still_run(
    function: Any, problem: str
) -> None:
    args = ("x",) if function is jobs.Mailer.static_send else ()
    if function.__module__ == "__main__":
        args = ()

    with pytest.warns(JobPortabilityWarning, match=problem):
        job = await queue(function, *args)

    assert job.outcome is not None
    assert job.outcome.succeeded


@pytest.mark.parametrize(("function", "problem"), UNPORTABLE)
async def test_unportable_functions_are_errors_with_queue_strict(
    function: Any, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_STRICT", "1")

    with pytest.raises(JobValidationError, match=problem):
        await queue(function)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param(jobs.Mailer().send, "bound method", id="bound-method"),
        pytest.param(42, "needs a function, got int 42", id="not-callable"),
        pytest.param(print, "not a plain function", id="builtin"),
        pytest.param(functools.partial(jobs.record, 1), "not a plain function", id="partial"),
        pytest.param(jobs.Mailer, "not a plain function", id="class"),
    ],
)
async def test_non_functions_are_refused_in_every_mode(target: Any, message: str) -> None:
    with pytest.raises(JobValidationError, match=message):
        await queue(target, "x")
    assert jobs.calls == []


async def test_an_argument_the_codec_cannot_encode_is_named_with_its_type() -> None:
    with pytest.raises(UnencodableArgumentError, match=r"argument 'user_id'.*is an object"):
        await queue(jobs.send_welcome_email, object())


async def test_an_unencodable_keyword_argument_is_named() -> None:
    with pytest.raises(UnencodableArgumentError, match=r"argument 'template'.*is a set"):
        await queue(jobs.send_welcome_email, "u1", template={1j})


async def test_an_oversized_payload_names_size_and_limit() -> None:
    configure(max_payload_bytes=1024)

    with pytest.raises(
        PayloadTooLargeError, match=r"over the limit of 1024 \(QUEUE_MAX_PAYLOAD_BYTES\)"
    ):
        await queue(jobs.send_welcome_email, "x" * 2000)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param((), {}, "missing a required argument: 'user_id'", id="missing"),
        pytest.param(("u1", "extra"), {}, "too many positional arguments", id="too-many"),
        pytest.param(
            ("u1",), {"color": "red"}, "unexpected keyword argument 'color'", id="unknown"
        ),
    ],
)
async def test_arguments_that_do_not_bind_are_refused(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobValidationError, match=rf"send_welcome_email.*{message}"):
        await queue(jobs.send_welcome_email, *args, **kwargs)
    assert jobs.calls == []


async def test_an_unknown_special_kwarg_is_named() -> None:
    with pytest.raises(JobValidationError, match="unknown special keyword argument '__priority'"):
        await queue(jobs.send_welcome_email, "u1", __priority=3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"__soft_timeout_s": 0}, "positive", id="zero"),
        pytest.param({"__hard_timeout_s": -1}, "positive", id="negative"),
        pytest.param({"__soft_timeout_s": True}, "number of seconds", id="bool"),
        pytest.param({"__soft_timeout_s": "5"}, "number of seconds", id="string"),
        pytest.param({"__soft_timeout_s": float("inf")}, "positive", id="infinite"),
        pytest.param(
            {"__soft_timeout_s": 10, "__hard_timeout_s": 10}, "greater than", id="hard-not-above"
        ),
    ],
)
async def test_invalid_timeouts_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(JobValidationError, match=message):
        await queue(jobs.send_welcome_email, "u1", **options)


async def test_validation_errors_are_type_errors_and_queue_errors() -> None:
    with pytest.raises(TypeError):
        await queue(jobs.send_welcome_email)


async def test_an_unencodable_context_value_is_left_out_not_an_error() -> None:
    with pytest.warns(RuntimeWarning, match="db_conn_v1"):
        context.set("db_conn_v1", object())
    context.set("request_id", "r1")

    await queue(jobs.send_welcome_email, "u1")

    assert jobs.calls[0]["context"] == {"request_id": "r1"}
