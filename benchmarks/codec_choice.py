"""Why the job codec is msgspec: encode + decode + type restoration with each candidate.

Run: ``uv run python benchmarks/codec_choice.py``

Each candidate encodes a job envelope holding typical arguments (a string, an int, a
datetime, a UUID, a Decimal and a dataclass) and decodes it with the arguments restored
to their annotated types, as a worker must. Figures are µs per job, best of 5 rounds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import timeit
import uuid
from typing import Any

import msgspec
import orjson
from pydantic import BaseModel, TypeAdapter


@dataclasses.dataclass
class Point:
    x: int
    y: float


ANNOTATIONS: list[Any] = [str, int, dt.datetime, uuid.UUID, decimal.Decimal, Point]
ARGS: list[Any] = [
    "66f2d3a1",
    42,
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    uuid.uuid4(),
    decimal.Decimal("19.99"),
    Point(1, 2.5),
]
ENVELOPE: dict[str, Any] = {
    "format": 1,
    "id": uuid.uuid4().hex,
    "function": "app.jobs.send_welcome_email",
    "args": ARGS,
    "kwargs": {},
    "context": {"request_id": "req-1", "user_id": "66f2d3a1"},
    "options": {"soft_timeout_s": 300.0},
    "enqueued_at": 1732812345.5,
    "attempt": 1,
}


class Envelope(msgspec.Struct):
    format: int
    id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    context: dict[str, Any]
    options: dict[str, Any]
    enqueued_at: float
    attempt: int


msgspec_encoder = msgspec.json.Encoder()
msgspec_decoder = msgspec.json.Decoder(Envelope)


def with_msgspec() -> list[Any]:
    body = msgspec_encoder.encode(Envelope(**ENVELOPE))
    envelope = msgspec_decoder.decode(body)
    return [
        msgspec.convert(v, t, strict=False) for v, t in zip(envelope.args, ANNOTATIONS, strict=True)
    ]


def _orjson_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError


def with_orjson() -> list[Any]:
    body = orjson.dumps(ENVELOPE, default=_orjson_default)
    envelope = orjson.loads(body)
    # orjson decodes to plain JSON types only; the types come back through msgspec.
    return [
        msgspec.convert(v, t, strict=False)
        for v, t in zip(envelope["args"], ANNOTATIONS, strict=True)
    ]


class PydanticEnvelope(BaseModel):
    format: int
    id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    context: dict[str, Any]
    options: dict[str, Any]
    enqueued_at: float
    attempt: int


envelope_adapter = TypeAdapter(PydanticEnvelope)
argument_adapters = [TypeAdapter(t) for t in ANNOTATIONS]


def with_pydantic() -> list[Any]:
    body = envelope_adapter.dump_json(PydanticEnvelope(**ENVELOPE))
    envelope = envelope_adapter.validate_json(body)
    return [a.validate_python(v) for v, a in zip(envelope.args, argument_adapters, strict=True)]


def envelope_msgspec() -> object:
    return msgspec_decoder.decode(msgspec_encoder.encode(Envelope(**ENVELOPE)))


def envelope_orjson() -> object:
    return orjson.loads(orjson.dumps(ENVELOPE, default=_orjson_default))


def envelope_pydantic() -> object:
    return envelope_adapter.validate_json(envelope_adapter.dump_json(PydanticEnvelope(**ENVELOPE)))


def _best_us(function: Any) -> float:
    calls = 20_000
    return min(timeit.repeat(function, number=calls, repeat=5)) / calls * 1e6


def main() -> None:
    print(f"{'codec':30}{'envelope only':>15}{'with types':>12}  (µs per job)")
    for name, envelope_only, full in [
        ("msgspec (Struct + convert)", envelope_msgspec, with_msgspec),
        ("orjson + msgspec.convert", envelope_orjson, with_orjson),
        ("pydantic (TypeAdapter)", envelope_pydantic, with_pydantic),
    ]:
        assert full() == ARGS, name
        print(f"{name:30}{_best_us(envelope_only):15.2f}{_best_us(full):12.2f}")


if __name__ == "__main__":
    main()
