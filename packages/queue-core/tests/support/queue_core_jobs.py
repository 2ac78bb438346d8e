"""Job functions used by queue-core's tests; a real module, importable by dotted path."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import threading
import uuid
from typing import Any

from pydantic import BaseModel

from fast_app.core.context import context
from fast_app.core.queue import current_job

calls: list[dict[str, Any]] = []


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 3


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


class Address(BaseModel):
    street: str
    since: dt.date


async def record(*args: Any, **kwargs: Any) -> None:
    calls.append({"args": args, "kwargs": kwargs, "context": context.snapshot()})


def record_in_thread(*args: Any, **kwargs: Any) -> None:
    calls.append(
        {
            "args": args,
            "kwargs": kwargs,
            "thread": threading.get_ident(),
            "context": context.snapshot(),
        }
    )


async def send_welcome_email(user_id: str, *, template: str = "welcome") -> None:
    calls.append({"user_id": user_id, "template": template, "context": context.snapshot()})


async def three_args(a: int, b: str, c: float) -> None:
    return None


async def receive_datetime(value: dt.datetime) -> None:
    calls.append({"value": value})


async def receive_date(value: dt.date) -> None:
    calls.append({"value": value})


async def receive_time(value: dt.time) -> None:
    calls.append({"value": value})


async def receive_uuid(value: uuid.UUID) -> None:
    calls.append({"value": value})


async def receive_decimal(value: decimal.Decimal) -> None:
    calls.append({"value": value})


async def receive_bytes(value: bytes) -> None:
    calls.append({"value": value})


async def receive_enum(value: Color) -> None:
    calls.append({"value": value})


async def receive_int_enum(value: Priority) -> None:
    calls.append({"value": value})


async def receive_dataclass(value: Point) -> None:
    calls.append({"value": value})


async def receive_model(value: Address) -> None:
    calls.append({"value": value})


async def receive_tuple(value: tuple[int, str]) -> None:
    calls.append({"value": value})


async def receive_nested(value: dict[str, list[Point]]) -> None:
    calls.append({"value": value})


async def receive_optional_model(value: Address | None = None) -> None:
    calls.append({"value": value})


async def receive_varargs(*points: Point, **addresses: Address) -> None:
    calls.append({"points": points, "addresses": addresses})


async def receive_plain(value: str, count: int, ratio: float, flag: bool, nothing: None) -> None:
    calls.append({"value": (value, count, ratio, flag, nothing)})


async def receive_list_dict(items: list[int], mapping: dict[str, Any]) -> None:
    calls.append({"value": (items, mapping)})


async def fail(message: str) -> None:
    raise ValueError(message)


def fail_in_thread(message: str) -> None:
    raise ValueError(message)


async def sleep_then_record(seconds: float) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        calls.append({"cancelled": True})
        raise
    calls.append({"slept": seconds})


ASYNC_STARTED: dict[str, asyncio.Event] = {}


async def announce_then_sleep(name: str, seconds: float) -> None:
    ASYNC_STARTED[name].set()
    await sleep_then_record(seconds)


def block_on(event_name: str) -> None:
    calls.append({"started": event_name})
    THREAD_STARTED.setdefault(event_name, threading.Event()).set()
    THREAD_EVENTS[event_name].wait(10)
    calls.append({"finished": event_name})


THREAD_EVENTS: dict[str, threading.Event] = {}
THREAD_STARTED: dict[str, threading.Event] = {}


async def change_context_then_record() -> None:
    context.set("set_by_job", True)
    calls.append({"context": context.snapshot()})


class Mailer:
    async def send(self, to: str) -> None:
        calls.append({"to": to})

    @staticmethod
    async def static_send(to: str) -> None:
        calls.append({"to": to})


FLAKY_FAILURES: dict[str, int] = {}


async def flaky(name: str) -> None:
    """Fails as many times as FLAKY_FAILURES[name] says, then succeeds."""
    calls.append({"flaky": name, "at": __import__("time").monotonic()})
    if FLAKY_FAILURES.get(name, 0) > 0:
        FLAKY_FAILURES[name] -= 1
        raise RuntimeError(f"{name} failed")


# -- telemetry tests: jobs that make spans of their own and read their baggage --------

SPAN_PROVIDER: Any = None  # the test's TracerProvider (the global one stays unset)


async def make_span(name: str) -> None:
    from opentelemetry import baggage, trace

    with SPAN_PROVIDER.get_tracer("job").start_as_current_span(name) as span:
        calls.append({"span": span.get_span_context(), "baggage": dict(baggage.get_all())})
        assert trace.get_current_span() is span


def make_span_in_thread(name: str) -> None:
    with SPAN_PROVIDER.get_tracer("job").start_as_current_span(name) as span:
        calls.append({"span": span.get_span_context(), "thread": threading.get_ident()})


async def report_current_job(reason: str) -> None:
    calls.append({"reason": reason, "job": current_job()})
    raise_until = FLAKY_FAILURES.get(reason, 0)
    if len(calls) <= raise_until:
        raise RuntimeError(f"{reason} failed")


def report_current_job_in_thread() -> None:
    calls.append({"job": current_job()})
