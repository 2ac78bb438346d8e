"""Fuzzing the farm: seeded random messages for every queue and exchange it reads.

``FuzzGenerator`` makes them from one ``random.Random(seed)`` (same seed, same messages,
but for the times they carry): random bytes, invalid UTF-8, NUL bytes, JSON of the wrong
shape, 100,000-deep nesting, bodies of up to ~1 MB, job envelopes with mutated fields or
forbidden functions, and the farm's own messages forged (heartbeats, snapshots, commands,
tombstones) with fields of the wrong type, missing, unbounded or stale; with header
tables of every AMQP field type, up to ~100 KB, forged ``x-fast-app-*`` headers, and
signatures that must not pass. ``publish_fuzz`` sends them through aiormq's low level,
so that any header value goes out, and returns an ``Accounting`` of what was sent, what
could not be encoded, and what the broker refused.

Two encodings of the properties: pamqp's (Python values; what pamqp cannot encode is
"not sendable"), and raw bytes built here (``RawProperties``), for what pamqp never
writes: doubles, unsigned bytes, non-UTF-8 strings and keys, timestamps past year 9999,
arrays nested thousands deep, unknown field types.

Well-formed commands and tombstones are obeyed by design when the farm has no signing
key: they are made only for a farm that has one (``FarmUnderFuzz.signing_key``), which
must ignore them because they are not signed by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import decimal
import json
import logging
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, TextIO

import msgspec
from pamqp.commands import Basic

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.amqp.headers import SIGNATURE, sign
from fast_app.core.queue.envelope import CONTENT_TYPE
from fast_app.farm.messages import command_from_dict, message_signature, new_tombstone

__all__ = [
    "BODY_KINDS",
    "HEADER_KINDS",
    "TARGETS",
    "Accounting",
    "FarmUnderFuzz",
    "FuzzGenerator",
    "FuzzMessage",
    "RawProperties",
    "publish_fuzz",
]

TARGETS = ("jobs", "delay", "dead", "events", "control", "tombstones")
BODY_KINDS = (
    "empty",
    "random_bytes",
    "invalid_utf8",
    "nul_bytes",
    "json_junk",
    "deep_nesting",
    "huge_string",
    "envelope_mutated",
    "envelope_forbidden",
    "envelope_valid",
    "heartbeat",
    "snapshot",
    "command_malformed",
    "command_unsigned",
    "tombstone_malformed",
    "tombstone_unsigned",
)
HEADER_KINDS = (
    "none",
    "pamqp_table",
    "raw_table",
    "raw_properties",
    "forged_fast_app",
    "huge_table",
)
#: Only for a farm with a signing key (the others obey them by design).
SIGNED_ONLY_KINDS = frozenset({"command_unsigned", "tombstone_unsigned"})

DELAY_LEVEL_MS = 100
# RabbitMQ's default frame_max; a content header frame must fit in one frame.
_FRAME_MAX = 131_072
_HEADER_FRAME_OVERHEAD = 8 + 14
_MAX_DEPTH = 100_000
_HUGE = 1_000_000

_TARGET_WEIGHTS = {
    "jobs": 30,
    "delay": 10,
    "dead": 10,
    "events": 15,
    "control": 20,
    "tombstones": 15,
}
_ENVELOPE_KINDS = ("envelope_mutated", "envelope_forbidden", "envelope_valid")
_HOME_KINDS = {
    "jobs": _ENVELOPE_KINDS,
    "delay": _ENVELOPE_KINDS,
    "dead": _ENVELOPE_KINDS,
    "events": ("snapshot", "heartbeat"),
    "control": ("command_malformed", "command_unsigned"),
    "tombstones": ("tombstone_malformed", "tombstone_unsigned"),
}
_HEADER_WEIGHTS = {
    "none": 20,
    "pamqp_table": 30,
    "raw_table": 10,
    "raw_properties": 10,
    "forged_fast_app": 22,
    "huge_table": 8,
}
_ALLOWED_FUNCTIONS = (
    "farm_jobs.record",
    "farm_jobs.record_in_thread",
    "farm_jobs.report",
    "farm_jobs.fail",
    "farm_jobs.flaky",
)
_FORBIDDEN_FUNCTIONS = (
    "os.system",
    "posix.system",
    "subprocess.getoutput",
    "builtins.exec",
    "builtins.eval",
    "pathlib.Path.touch",
    "farm_jobs.os.system",
    "farm_jobs.json.loads",
    "farm_jobs.asyncio.sleep",
    "farm_jobs.report.__call__",
    "farm_jobs.context.set",
    "fast_app.core.queue.queue",
)
_COMMAND_NAMES = ("set_limits", "drain_worker", "restart_worker", "pause", "resume", "shutdown")
_TROUBLE_TEXT = (
    "",
    "\x00",
    "a\x00b",
    "\x1b[2J\x1b[31mred",
    "\x1b]0;title\x07",
    "\r\nforged line",
    "\u202egnp.exe",
    "\ud800",
    "\udfff\ud800",
    "\u0085\u2028",
    "\ufeff",
    "😀" * 3,
    "../../etc/passwd",
    "%s%s%n",
    "{0.__class__}",
    "null",
    " ",
)
_INVALID_UTF8 = (
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
)


@dataclass
class FarmUnderFuzz:
    """What the generator knows of the farm it attacks.

    Attributes:
        queue_name: the jobs queue.
        supervisor_id: the supervisor's id (its control routing key).
        worker_ids: its workers' ids.
        forged_results: the results file forged jobs of allowed functions write to.
        marker: the file a forbidden function would create if a worker ran it.
        signing_key: the farm's signing key, if it has one: well-formed unsigned
            commands and tombstones are sent too (it must ignore them), and signatures
            made with it that must not pass (for another kind of message or another body;
            or over content to refuse anyway).
        real_job_ids: ids of real jobs, added to while they are queued: tombstones name
            them (malformed ones; for a signed farm also well-formed, unsigned ones).
        snapshot_template: a real snapshot of the farm, to forge others from.
    """

    queue_name: str
    supervisor_id: str
    worker_ids: tuple[str, ...]
    forged_results: str
    marker: str
    signing_key: bytes | None = None
    real_job_ids: list[str] = field(default_factory=list)
    snapshot_template: dict[str, Any] | None = None

    @property
    def signed(self) -> bool:
        """Whether the farm has a signing key."""
        return self.signing_key is not None


class RawProperties(Basic.Properties):
    """Message properties given as their encoded bytes (flags and values), sent as they are."""

    def __init__(self, encoded: bytes, message_id: str) -> None:
        # aiormq reads message_id (it invents one when empty): the wire has its own.
        super().__init__(message_id=message_id)
        self.encoded = encoded

    def marshal(self) -> bytes:
        return self.encoded


@dataclass(frozen=True)
class FuzzMessage:
    """One message to publish.

    Attributes:
        index: its position in the run (``x-fuzz-index`` header when it has headers).
        target: one of ``TARGETS``.
        kind: the kind of body, one of ``BODY_KINDS``.
        header_kind: how its properties were made, one of ``HEADER_KINDS``.
        body: the body.
        properties: pamqp properties, or ``RawProperties``; ``None`` when they could not
            be made (not sendable).
        routing_key: the routing key (the target's unless forged).
        problem: why it is not sendable, if it is not.
    """

    index: int
    target: str
    kind: str
    header_kind: str
    body: bytes
    properties: Basic.Properties | None
    routing_key: str
    problem: str | None = None

    def describe(self) -> dict[str, Any]:
        """A short description for the run's journal."""
        return {
            "index": self.index,
            "target": self.target,
            "kind": self.kind,
            "header_kind": self.header_kind,
            "routing_key": self.routing_key[:80],
            "size": len(self.body),
            "body": repr(self.body[:160]),
            "problem": self.problem,
        }


@dataclass
class Accounting:
    """What a fuzz run did, per (target, kind) and per header kind."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    not_sendable: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    header_kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)

    def count(self, outcome: str, message: FuzzMessage) -> None:
        """Count ``message`` as ``sent``, ``not_sendable`` or ``refused``."""
        counter: Counter[tuple[str, str]] = getattr(self, outcome)
        counter[message.target, message.kind] += 1
        self.header_kinds[message.header_kind, outcome] += 1

    @property
    def total_sent(self) -> int:
        """Messages the broker took."""
        return sum(self.sent.values())

    def render(self) -> str:
        """The accounting as a table, for people."""
        rows = sorted(set(self.sent) | set(self.not_sendable) | set(self.refused))
        lines = [f"{'target':<11} {'kind':<20} {'sent':>7} {'not sendable':>13} {'refused':>8}"]
        for key in rows:
            target, kind = key
            lines.append(
                f"{target:<11} {kind:<20} {self.sent[key]:>7} {self.not_sendable[key]:>13}"
                f" {self.refused[key]:>8}"
            )
        lines.append(
            f"{'total':<32} {self.total_sent:>7} {sum(self.not_sendable.values()):>13}"
            f" {sum(self.refused.values()):>8}"
        )
        lines.append("by header kind:")
        for header_kind in HEADER_KINDS:
            counts = {
                o: self.header_kinds[header_kind, o] for o in ("sent", "not_sendable", "refused")
            }
            lines.append(f"  {header_kind:<16} {counts}")
        lines += [f"refused: {refusal}" for refusal in self.refusals[:20]]
        return "\n".join(lines)


class FuzzGenerator:
    """Random messages for the queues and exchanges of one farm, from one seed.

    Args:
        seed: the seed of the one ``random.Random`` everything is drawn from.
        farm: what is known of the farm attacked.
        targets: only these targets (default: all).
        kinds: only these body kinds (default: all that suit the farm).
        header_kinds: only these kinds of properties (default: all).
        broker_bugs: also send an ``x-death`` header that is an array of other things than
            tables. RabbitMQ 3.10 crashes dead-lettering such a message (a delay queue's
            TTL, a delivery limit, an expiration); after a few, quorum queues stop
            dead-lettering on the whole node (``rabbit_fifo_dlx_sup`` gives up), which
            jams every delay queue. Off by default: no farm code can prevent it.
        huge_budget_bytes: at most this many bytes of huge bodies and tables in a run
            (a long run must not fill the broker's memory).
    """

    def __init__(
        self,
        seed: int,
        farm: FarmUnderFuzz,
        *,
        targets: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        header_kinds: Sequence[str] | None = None,
        broker_bugs: bool = False,
        huge_budget_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        self.seed = seed
        self.farm = farm
        self._rng = Random(seed)
        self._targets = tuple(targets or TARGETS)
        allowed = set(kinds or BODY_KINDS)
        if not farm.signed:
            allowed -= SIGNED_ONLY_KINDS
        self._kinds = tuple(kind for kind in BODY_KINDS if kind in allowed)
        self._header_kinds = tuple(
            kind for kind in HEADER_KINDS if header_kinds is None or kind in header_kinds
        )
        self._huge_left = huge_budget_bytes
        self._broker_bugs = broker_bugs
        self._index = 0
        self._body_makers: dict[str, Callable[[], bytes]] = {
            "empty": lambda: b"",
            "random_bytes": self._random_bytes,
            "invalid_utf8": self._invalid_utf8,
            "nul_bytes": self._nul_bytes,
            "json_junk": lambda: self._dumps(self._json_value(3)),
            "deep_nesting": self._deep_nesting,
            "huge_string": self._huge_string,
            "envelope_mutated": lambda: self._dumps(self._mutated_envelope()),
            "envelope_forbidden": lambda: self._dumps(self._forbidden_envelope()),
            "envelope_valid": lambda: self._dumps(self._valid_envelope()),
            "heartbeat": lambda: self._dumps(self._heartbeat()),
            "snapshot": lambda: self._dumps(self._snapshot()),
            "command_malformed": self._malformed_command,
            "command_unsigned": lambda: self._dumps(self._command()),
            "tombstone_malformed": self._malformed_tombstone,
            "tombstone_unsigned": lambda: self._dumps(self._tombstone(self._real_job_id())),
        }

    # -- messages ----------------------------------------------------------------------

    def messages(self, count: int, targets: Sequence[str] | None = None) -> Iterator[FuzzMessage]:
        """``count`` messages, made one at a time (known job ids grow meanwhile)."""
        for _ in range(count):
            yield self.message(targets)

    def message(self, targets: Sequence[str] | None = None) -> FuzzMessage:
        """The next message, for one of ``targets`` (default: the generator's)."""
        rng = self._rng
        index = self._index
        self._index += 1
        choices = [t for t in (targets or self._targets) if t in _TARGET_WEIGHTS]
        target = rng.choices(choices, [_TARGET_WEIGHTS[t] for t in choices])[0]
        home = [kind for kind in _HOME_KINDS[target] if kind in self._kinds]
        kind = rng.choice(home) if home and rng.random() < 0.5 else rng.choice(self._kinds)
        body = self._body_makers[kind]()
        header_kind = rng.choices(
            self._header_kinds, [_HEADER_WEIGHTS[k] for k in self._header_kinds]
        )[0]
        routing_key = self._routing_key(target)
        signature = self._signature(kind, body)
        try:
            properties = self._properties(header_kind, index, kind, signature)
            problem = _unsendable(properties, routing_key)
        except Exception as error:  # pamqp refuses the Python values
            properties, problem = None, f"{type(error).__name__}: {error}"[:200]
        return FuzzMessage(index, target, kind, header_kind, body, properties, routing_key, problem)

    def _routing_key(self, target: str) -> str:
        farm, rng = self.farm, self._rng
        if target in ("jobs", "dead"):
            return farm.queue_name
        if target == "delay":
            return f"{farm.queue_name}.delay.{DELAY_LEVEL_MS}ms"
        if target == "control" and rng.random() < 0.7:
            return farm.supervisor_id
        if target == "control" and rng.random() < 0.3:
            return farm.supervisor_id + rng.choice(("\x00", " ", "-w1", "\x1b"))
        if rng.random() < 0.01:
            return rng.choice(("k" * 256, "\ud800"))  # not sendable
        return self._property_text(rng.choice((0, 8, 64, 255)))

    # -- plain junk ----------------------------------------------------------------------

    def _big(self, size: int) -> int:
        """``size`` while the run's budget of huge values lasts, then a few KB."""
        if self._huge_left < size:
            return 4_096
        self._huge_left -= size
        return size

    def _pick(self, options: Sequence[Any]) -> Any:
        """One of ``options``; a callable one is called (big values are built if chosen)."""
        chosen = self._rng.choice(options)
        return chosen() if callable(chosen) else chosen

    def _size(self, small: int = 512) -> int:
        rng = self._rng
        roll = rng.random()
        if roll < 0.01:
            return self._big(rng.randint(65_536, _HUGE))
        if roll < 0.1:
            return rng.randint(small, 65_536)
        return rng.randint(0, small)

    def _random_bytes(self) -> bytes:
        return self._rng.randbytes(self._size())

    def _text(self, length: int) -> str:
        rng = self._rng
        if rng.random() < 0.3:
            return rng.choice(_TROUBLE_TEXT)
        alphabet = rng.choice(
            (
                "abcdef0123456789",
                "".join(map(chr, range(32))) + "abc",
                "aé€😀\u202e\x00\x1b",
                "ABCxyz-_.:@/",
            )
        )
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, length)))

    def _json_value(self, depth: int) -> Any:
        rng = self._rng
        leaves: list[Callable[[], Any]] = [
            lambda: None,
            lambda: rng.choice((True, False)),
            lambda: rng.choice((0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400)),
            lambda: rng.choice((0.0, -0.0, 1.5, 1e308, 5e-324, float("inf"), float("nan"))),
            lambda: self._text(40),
            lambda: rng.randint(-(10**6), 10**6),
        ]
        if depth <= 0 or rng.random() < 0.4:
            return rng.choice(leaves)()
        if rng.random() < 0.5:
            return [self._json_value(depth - 1) for _ in range(rng.randint(0, 4))]
        return {self._text(12): self._json_value(depth - 1) for _ in range(rng.randint(0, 4))}

    def _dumps(self, value: Any) -> bytes:
        """JSON text of ``value``: NaN and big numbers as Python writes them, lone
        surrogates as their (invalid) UTF-8 bytes."""
        ascii_only = self._rng.random() < 0.5
        text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
        return text.encode("utf-8", "surrogatepass")

    def _invalid_utf8(self) -> bytes:
        rng = self._rng
        source = rng.choice((self._valid_envelope, self._heartbeat, self._snapshot, self._command))
        body = bytearray(json.dumps(source(), ensure_ascii=False).encode("utf-8", "surrogatepass"))
        for _ in range(rng.randint(1, 4)):
            quote = body.find(b'"', rng.randrange(len(body)))
            at = quote + 1 if quote >= 0 else rng.randrange(len(body) + 1)
            body[at:at] = rng.choice(_INVALID_UTF8)
        return bytes(body)

    def _nul_bytes(self) -> bytes:
        rng = self._rng
        roll = rng.random()
        if roll < 0.3:
            return b"\x00" * rng.randint(1, 4096)
        source = rng.choice((self._valid_envelope, self._heartbeat, self._snapshot, self._command))
        body = bytearray(json.dumps(source()).encode())
        if roll < 0.6:
            # NUL escapes in every string: ids, functions, commands.
            return bytes(body).replace(b'":', b'\\u0000":').replace(b': "', b': "\\u0000')
        for _ in range(rng.randint(1, 8)):
            body.insert(rng.randrange(len(body) + 1), 0)
        return bytes(body)

    def _deep_nesting(self) -> bytes:
        rng = self._rng
        depth = rng.choice((1_000, 10_000, _MAX_DEPTH))
        nested = rng.choice((b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth))
        wrapper = rng.choice(
            (
                lambda: b"%s",
                lambda: self._dumps(self._valid_envelope()).replace(
                    b'"args": [', b'"args": [%s, ', 1
                ),
                lambda: self._dumps(self._valid_envelope()).replace(
                    b'"context": {}', b'"context": {"deep": %s}', 1
                ),
                lambda: b'{"command": "set_limits", "min_workers": %s, "max_workers": %s}',
                lambda: b'{"type": "snapshot", "supervisor_id": "x", "workers": %s}',
                lambda: b'{"job_id": %s, "function": "f", "reason": "r", "worker": "w"}',
            )
        )()
        return wrapper.replace(b"%s", nested)

    def _huge_string(self) -> bytes:
        rng = self._rng
        size = self._big(rng.choice((70_000, 200_000, 500_000, _HUGE - 1024)))
        # A character takes up to 12 bytes in JSON (an emoji: two escapes), and a body holds
        # the string at most twice: it stays within ``size``.
        char, width = rng.choice((("x", 1), ("é", 6), ("\x00", 6), ("\x1b", 6), ("😀", 12)))
        huge = char * (size // (2 * width))
        shape = rng.choice(("envelope", "heartbeat", "snapshot", "command", "tombstone", "list"))
        if shape == "envelope":
            value: Any = self._valid_envelope()
            value[rng.choice(("id", "function", "args", "context"))] = (
                huge if rng.random() < 0.5 else {huge[:1000]: huge}
            )
        elif shape == "heartbeat":
            value = self._heartbeat()
            value[rng.choice(("worker_id", "state", "last_error"))] = huge
        elif shape == "snapshot":
            value = self._snapshot()
            value[rng.choice(("supervisor_id", "host", "events"))] = huge
        elif shape == "command":
            value = {"command": rng.choice((huge, "drain_worker")), "worker_id": huge}
        elif shape == "tombstone":
            value = {"job_id": huge, "function": "f", "reason": "r", "worker": "w"}
        else:
            value = [huge]
        return self._dumps(value)

    # -- job envelopes -------------------------------------------------------------------

    def _job_id(self) -> str:
        return self._rng.randbytes(16).hex()

    def _call(self) -> tuple[str, list[Any]]:
        """An allowed function and arguments that write only to the forged results."""
        rng = self._rng
        function = rng.choice(_ALLOWED_FUNCTIONS)
        forged, tag = self.farm.forged_results, f"forged-{self._index}"
        if function == "farm_jobs.report":
            return function, [forged, "ran", tag]
        if function == "farm_jobs.flaky":
            return function, [forged, tag, rng.randint(0, 2)]
        return function, [forged, tag]

    def _envelope(self, function: str, args: list[Any]) -> dict[str, Any]:
        rng = self._rng
        options: dict[str, Any] = {}
        if rng.random() < 0.3:
            options["retries"] = rng.randint(0, 2)
        if rng.random() < 0.2:
            options["soft_timeout_s"] = rng.choice((0.5, 30.0))
        if rng.random() < 0.2:
            options["hard_timeout_s"] = rng.choice((60.0, 3600.0))
        return {
            "format": 1,
            "id": self._job_id(),
            "function": function,
            "args": args,
            "kwargs": {},
            "context": {"request_id": self._job_id()} if rng.random() < 0.3 else {},
            "options": options,
            "enqueued_at": time.time(),
            "attempt": 1,
            "not_before": None,
        }

    def _valid_envelope(self) -> dict[str, Any]:
        return self._envelope(*self._call())

    def _forbidden_envelope(self) -> dict[str, Any]:
        rng = self._rng
        marker = self.farm.marker
        function = rng.choice(_FORBIDDEN_FUNCTIONS)
        args: list[Any] = {
            "os.system": [f"touch {marker}"],
            "posix.system": [f"touch {marker}"],
            "farm_jobs.os.system": [f"touch {marker}"],
            "subprocess.getoutput": [f"touch {marker}"],
            "builtins.exec": [f"open({marker!r}, 'w').close()"],
            "builtins.eval": [f"open({marker!r}, 'w').close()"],
            "pathlib.Path.touch": [marker],
        }.get(function, [marker])
        return self._envelope(function, args)

    def _mutated_envelope(self) -> dict[str, Any]:
        rng = self._rng
        envelope = self._valid_envelope() if rng.random() < 0.7 else self._forbidden_envelope()
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(
                (
                    "format",
                    "id",
                    "function",
                    "args",
                    "kwargs",
                    "context",
                    "options",
                    "enqueued_at",
                    "attempt",
                    "not_before",
                    "missing",
                    "extra",
                )
            )
            if name == "missing":
                envelope.pop(rng.choice(list(envelope)), None)
            elif name == "extra":
                envelope[self._text(12) or "evil"] = self._json_value(2)
            else:
                envelope[name] = self._mutation(name)
        return envelope

    def _mutation(self, name: str) -> Any:
        """A wrong value for field ``name`` of an envelope (big ones are built if chosen)."""
        rng = self._rng
        real = self.farm.real_job_ids
        forged = self.farm.forged_results
        numbers = (0, -1, -1e308, 1e308, 2**63, 2**64, 10**400, 1.5, float("inf"), float("nan"))
        candidates: dict[str, tuple[Any, ...]] = {
            "format": (0, 2, -1, 2**64, "1", 1.0, True, None),
            "id": (
                "",
                "\x00",
                "id\x00with-nul",
                "\x1b[31mred\x1b[0m",
                lambda: "x" * self._big(200_000),
                "\ud800",
                5,
                ["a"],
                {"id": "a"},
                None,
                lambda: real[-1] if real else "0" * 32,
            ),
            "function": (
                *_FORBIDDEN_FUNCTIONS,
                "",
                ".",
                "farm_jobs.",
                ".record",
                "farm_jobs..record",
                "farm_jobs.record\x00",
                "farm_jobs.record\n",
                lambda: "farm_jobs." + "r" * self._big(300_000),
                "farm_jobs.__builtins__",
                "farm_jobs.report.__globals__",
                "FARM_JOBS.record",
                5,
                ["farm_jobs.record"],
                None,
            ),
            "args": (
                [],
                [forged],
                [forged, "t", 1, 2, 3],
                "args",
                {"0": "a"},
                None,
                lambda: list(range(self._big(100_000) // 8)),
                lambda: [self._json_value(3)],
            ),
            "kwargs": (
                [],
                "kwargs",
                None,
                {"unknown": 1},
                {"results": forged},
                {"\x00": 1},
                {"__proto__": {}},
                lambda: {f"k{i}": i for i in range(self._big(100_000) // 10)},
            ),
            "context": (
                [],
                None,
                "context",
                {"\x00": "\x1b[2J"},
                lambda: {f"k{i}": "v" * 10 for i in range(self._big(300_000) // 16)},
                lambda: {"k": self._json_value(3)},
                {"": None},
            ),
            "options": (
                [],
                None,
                {"unknown": 1},
                lambda: {"retries": rng.choice((-1, 101, 2**63, 2**64, "3", 1.5, None, True))},
                lambda: {"soft_timeout_s": rng.choice((*numbers, "5", True, [], None))},
                lambda: {
                    "hard_timeout_s": rng.choice(
                        (0, -1, 0.0, -1e308, "5", True, [], 2**64, 10**400)
                    )
                },
                lambda: {"delay_s": rng.choice((-1, 1e308, "5", True, 10**400))},
                {"soft_timeout_s": 30.0, "hard_timeout_s": 1e-300},
            ),
            "enqueued_at": (*numbers, "now", None, True),
            "attempt": (0, -1, -(2**63), 2**63, 2**64, 10**400, 1.5, "2", True, None),
            "not_before": (*numbers, "soon", True, time.time() + 3600, time.time() + 0.3),
        }
        return self._pick(candidates.get(name, (None,)))

    # -- the farm's own messages, forged -------------------------------------------------

    def _worker_id(self) -> str:
        rng = self._rng
        real = self.farm.worker_ids
        if real and rng.random() < 0.5:
            return rng.choice(real)
        return f"{self.farm.supervisor_id}-w{rng.randint(3, 99)}"

    def _heartbeat(self) -> dict[str, Any]:
        """A worker's heartbeat: it travels on the worker's socket, never on the broker."""
        rng = self._rng
        function, args = self._call()
        now = time.time()
        beat: dict[str, Any] = {
            "type": "heartbeat",
            "worker_id": self._worker_id(),
            "pid": rng.choice((1, 2**31, 2**64, -1)),
            "state": rng.choice(("idle", "busy", "draining", "hung")),
            "at": now,
            "started_at": now - 10,
            "concurrency": rng.choice((1, 16, 10**9)),
            "in_flight": [
                {
                    "id": self._job_id(),
                    "function": function,
                    "attempt": 1,
                    "started_at": now - 100,
                    "soft_deadline": None,
                    "hard_deadline": now - 60,  # past: a supervisor would kill its worker
                    "still_running": True,
                    "args": repr(args)[:100],
                    "context_keys": [],
                }
            ],
            "in_flight_count": rng.choice((1, 2**53, -1)),
            "counters": {"succeeded": rng.choice((0, 2**53, -1))},
            "ended": [],
            "rss_bytes": rng.choice((None, 0, 2**60)),
            "last_error": self._text(80),
        }
        return self._scramble(beat)

    def _snapshot(self) -> dict[str, Any]:
        """A supervisor's snapshot, forged from a real one: stopped, overloaded, out of
        bounds, under the real supervisor's id or another."""
        rng, farm = self._rng, self.farm
        snapshot = copy.deepcopy(farm.snapshot_template or _fallback_snapshot(farm))
        snapshot["at"] = time.time()
        forgeries: list[Callable[[], object]] = [
            lambda: snapshot.update(stopped=True),
            lambda: snapshot.update(stopping=True, paused=True, desired_workers=0),
            lambda: snapshot.update(supervisor_id=f"fuzz-peer-{rng.randrange(10**6)}"),
            lambda: snapshot.update(
                supervisor_id=self._pick(
                    (
                        farm.supervisor_id + "\x00",
                        "\x1b[2J" + farm.supervisor_id,
                        lambda: "s" * self._big(200_000),
                        "",
                        None,
                        5,
                        [farm.supervisor_id],
                    )
                )
            ),
            lambda: snapshot.update(at=rng.choice((0.0, 8e9, 8e9 + 1, -1.0, "now", 1e308))),
            lambda: snapshot.update(
                workers=[
                    {**worker, "in_flight_count": rng.choice((2**53, 2**53 + 1, -1, 1.5))}
                    for worker in _workers_of(snapshot)
                ]
            ),
            lambda: snapshot.update(
                workers=[{**worker, "in_flight": []} for worker in _workers_of(snapshot)]
                * rng.choice((100, 1025))
            ),
            lambda: snapshot.update(
                queue={"ready": 2**53, "unacked": 2**53, "consumers": -1, "dead": None}
            ),
            lambda: snapshot.update(
                events=[{"seq": 1, "at": 1.0, "kind": "x", "level": "info", "message": "\x1b[2J"}]
                * rng.choice((1, 129))
            ),
            lambda: snapshot.update(refused={"malformed": 2**53, "\x00": -1}),
            lambda: snapshot.update(settings={"min_workers": 1025, "max_workers": -1}),
            lambda: self._scramble(snapshot),
        ]
        for forge in rng.sample(forgeries, rng.randint(1, 3)):
            forge()
        return snapshot

    def _scramble(self, message: dict[str, Any]) -> dict[str, Any]:
        """Give a few fields of a forged message wrong types, or take them away."""
        rng = self._rng
        for _ in range(rng.randint(0, 4)):
            name = rng.choice([*message])
            if name == "type" and rng.random() < 0.7:
                continue
            if rng.random() < 0.3:
                message.pop(name)
            else:
                message[name] = self._json_value(2)
        return message

    def _command(self) -> dict[str, Any]:
        """A well-formed command, as the farm's own tools write it (not signed)."""
        rng = self._rng
        name = rng.choice(_COMMAND_NAMES)
        fields: dict[str, Any] = {"command": name}
        if name == "set_limits":
            fields.update(min_workers=0, max_workers=1)
        elif name in ("drain_worker", "restart_worker"):
            fields["worker_id"] = rng.choice(self.farm.worker_ids or ("w",))
        command: dict[str, Any] = msgspec.to_builtins(command_from_dict(fields, sender="fuzz"))
        return command

    def _malformed_command(self) -> bytes:
        """A command that no farm may obey, signed or not: out of bounds, of the wrong
        type, stale, unknown, without an id or not an object at all."""
        rng = self._rng
        command: Any = self._command()
        name = command["command"]
        now = time.time()
        invalid: dict[str, tuple[Any, ...]] = {
            "command": (name.upper(), name + "\x00", " " + name, [name], 5, None, "", "drain"),
            "sender": (5, None, [], "s" * 2001, "\x00", "\x1b[2J", "a\nb"),
            "sent_at": ("now", None, True, -1.0, 8e9 + 1, now - 400, now + 400, 1e308, 10**400),
            "id": ("", "A" * 32, "0" * 31, "0" * 33, "g" * 32, 5, None),
            "min_workers": (-1, 1025, "1", 1.5, True, [], 10**400),
            "max_workers": (-1, 1025, "0", 0.5, False, {}, 10**400),
            "worker_id": ("", "w" * 201, "a b", "\x00", 5, None, [self._worker_id()]),
            "signature": (rng.randbytes(32).hex(),),  # unknown field
        }
        roll = rng.random()
        if roll < 0.1:  # whole numbers in bounds, but no valid pair
            command.update(command="set_limits", min_workers=rng.choice((3, 2)), max_workers=0)
            command.pop("worker_id", None)
        elif roll < 0.9:
            for field_name in rng.sample(sorted(invalid), rng.randint(1, 2)):
                command[field_name] = rng.choice(invalid[field_name])
        else:
            command = rng.choice(([command], name, None, 5, {"COMMAND": name}, self._json_value(3)))
        return self._dumps(command)

    def _real_job_id(self) -> str:
        """One of the latest real jobs (drawing the same randomness however many there are,
        so that a seed replays the same messages)."""
        made_up, back = self._job_id(), self._rng.randrange(50)
        real = self.farm.real_job_ids
        return real[-1 - back % len(real)] if real else made_up

    def _tombstone(self, job_id: str) -> dict[str, Any]:
        """A well-formed tombstone, as a supervisor writes it (not signed)."""
        tombstone = new_tombstone(job_id, "farm_jobs.record", self._worker_id())
        fields: dict[str, Any] = msgspec.to_builtins(tombstone)
        return fields

    def _malformed_tombstone(self) -> bytes:
        """A tombstone no farm may heed: a field missing, of a wrong type or unbounded.

        Half of them name a real job: a farm that coerced types would settle it instead
        of running it.
        """
        rng = self._rng
        real = self._real_job_id()
        tombstone: Any = self._tombstone(real if rng.random() < 0.5 else self._job_id())
        invalid: dict[str, tuple[Any, ...]] = {
            "type": ("tomb", "", None, 5, "snapshot"),
            "job_id": (
                "",
                "x" * 65,
                "a b",
                "\x00",
                5,
                None,
                [real],
                real + "\x00",
                "\x1b[2J" + real,
                lambda: "x" * self._big(200_000),
            ),
            "function": ("", "a b", "a/b", "f" * 301, 5, None, "farm_jobs.record\x00"),
            "worker": ("", "a b", "w" * 201, 5, None, "\x1b[2J"),
            "reason": ("other", "", 5, None),
            "at": (-1.0, 8e9 + 1, "now", None, 10**400),
            "extra": (1,),  # unknown field
        }
        roll = rng.random()
        if roll < 0.15:
            tombstone.pop(rng.choice(("job_id", "function", "worker")))
        elif roll < 0.9:
            for field_name in rng.sample(sorted(invalid), rng.randint(1, 2)):
                tombstone[field_name] = self._pick(invalid[field_name])
        else:
            tombstone = rng.choice(([tombstone], None, "tombstone", 5, self._json_value(3)))
        return self._dumps(tombstone)

    def _signature(self, kind: str, body: bytes) -> Any:
        """An ``x-fast-app-signature`` that must not pass: none, made up, under another
        key, for another kind of message or another body; right only for content that
        must be refused anyway (a forbidden function, a malformed command or tombstone).

        Junk of no known kind (which may still be a job, a command...) is never signed
        with the farm's key.
        """
        rng = self._rng
        key = self.farm.signing_key if kind in _SIGNED_AS else None
        own = _SIGNED_AS.get(kind, "job")
        roll = rng.random()
        if roll < 0.3:
            return None
        if roll < 0.45:
            return rng.randbytes(32).hex()
        if roll < 0.6 or key is None:
            return _sign_as(own, body, b"not the farm's key, but long enough for one")
        if roll < 0.8:
            return _sign_as(rng.choice([k for k in _SIGNATURE_KINDS if k != own]), body, key)
        if roll < 0.9 or kind not in _SIGNED_YET_REFUSED:
            return _sign_as(own, body + b" ", key)
        return _sign_as(own, body, key)

    # -- properties ----------------------------------------------------------------------

    def _properties(
        self, header_kind: str, index: int, kind: str, signature: Any
    ) -> Basic.Properties:
        """The message's properties, made the ``header_kind`` way, with ``signature``.

        Raises:
            Exception: pamqp cannot encode them (the message is not sendable).
        """
        rng = self._rng
        content_type = CONTENT_TYPE if kind.startswith("envelope") else "application/json"
        if header_kind == "raw_properties":
            return RawProperties(self._raw_properties(index), f"fuzz-{index}")
        if header_kind == "raw_table":
            table = self._raw_table(rng.randint(1, 12), 3, index)
            flags = 0x8000 | 0x2000 | 0x0080  # content_type, headers, message_id
            encoded = (
                struct.pack(">H", flags)
                + _shortstr(content_type.encode())
                + table
                + _shortstr(f"fuzz-{index}".encode())
            )
            return RawProperties(encoded, f"fuzz-{index}")
        headers: dict[str, Any] | None = None
        if header_kind == "pamqp_table":
            headers = {self._key(): self._pamqp_value(3) for _ in range(rng.randint(1, 12))}
            if rng.random() < 0.05:
                headers[self._key()] = self._unencodable()
            if rng.random() < 0.02:  # RabbitMQ cannot parse these: it closes the connection
                headers[self._key()] = rng.choice((float("nan"), float("inf")))
        elif header_kind == "forged_fast_app":
            headers = self._forged_headers()
        elif header_kind == "huge_table":
            headers = self._huge_table()
        if signature is not None:
            headers = {**(headers or {}), SIGNATURE: signature}
        if headers is not None:
            self._x_death(headers)
            headers["x-fuzz-index"] = index
        message_id: Any = f"fuzz-{index}"
        if rng.random() < 0.2:
            message_id = rng.choice(("", "\x00", "\x1b[2J", "m" * 255, "é" * 127, self._job_id()))
        return Basic.Properties(
            content_type=content_type,
            headers=headers,
            delivery_mode=rng.choice((1, 2)),
            message_id=message_id,
            timestamp=rng.choice(
                (None, dt.datetime.now(dt.UTC), dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
            ),
            message_type=rng.choice((None, "farm_jobs.record", self._property_text())),
            correlation_id=rng.choice((None, self._property_text())),
            app_id=rng.choice((None, "fuzz")),
        )

    def _x_death(self, headers: dict[str, Any]) -> None:
        """Keep an ``x-death`` header one the broker can dead-letter, unless ``broker_bugs``."""
        value = headers.get("x-death")
        if self._broker_bugs:
            if self._rng.random() < 0.05:
                headers["x-death"] = self._rng.choice((["x-death"], [0.5], [{"n": 1}, 1]))
        elif isinstance(value, list):
            headers["x-death"] = [item for item in value if isinstance(item, dict)]

    def _key(self) -> str:
        rng = self._rng
        return rng.choice(
            (
                "k" + str(rng.randint(0, 10**6)),
                self._property_text(20),
                "x-fast-app-" + rng.choice(("attempt", "signature", "dead-reason", "x")),
                "x-death",
                "x-delivery-count",
                "traceparent",
                "k" * 128,  # the longest key pamqp sends whole
                "é" * 64,
            )
        )

    def _property_text(self, length: int = 30) -> str:
        """Text for a property or header (no lone surrogates: they cannot be encoded)."""
        text = self._text(length).encode("utf-8", "ignore")[:length]
        return text.decode("utf-8", "ignore")

    def _pamqp_value(self, depth: int) -> Any:
        """A header value of any type pamqp encodes, and now and then one it cannot."""
        rng = self._rng
        makers: list[Callable[[], Any]] = [
            lambda: rng.choice((True, False)),
            lambda: rng.choice((-128, 127, -32768, 32767, 65535, -(2**31), 2**31 - 1, 2**32 - 1)),
            lambda: rng.choice((-(2**63), 2**63 - 1, rng.randint(-(2**40), 2**40))),
            lambda: rng.choice((0.0, -0.0, 1.5, 3.4e38, 1e-45, rng.random())),
            lambda: rng.choice(
                (decimal.Decimal("1.23"), decimal.Decimal("-0.5"), decimal.Decimal("1e5"))
            ),
            lambda: self._property_text(60),
            lambda: "s" * rng.choice((255, 256, 4_096)),
            lambda: rng.choice(
                (
                    dt.datetime.now(dt.UTC),
                    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                    time.gmtime(0),
                )
            ),
            lambda: bytearray(rng.randbytes(rng.randint(0, 300))),
            lambda: None,
        ]
        if depth > 0:
            makers.append(lambda: {self._key(): self._pamqp_value(depth - 1) for _ in range(3)})
            makers.append(lambda: [self._pamqp_value(depth - 1) for _ in range(rng.randint(0, 4))])
        return rng.choice(makers)()

    def _unencodable(self) -> Any:
        """A header value pamqp cannot encode (the message is not sendable)."""
        return self._rng.choice(
            (
                2**64,
                -(2**63) - 1,
                1e39,
                decimal.Decimal("NaN"),
                decimal.Decimal(2**40),
                b"bytes",
                {1, 2},
                object(),
                dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                "\ud800",
            )
        )

    def _forged_headers(self) -> dict[str, Any]:
        rng = self._rng
        signature: Any = rng.choice(
            (
                rng.randbytes(32).hex(),
                rng.randbytes(31).hex(),
                "g" * 64,
                "é" * 64,
                bytearray(rng.randbytes(64)),
                64,
                None,
                [rng.randbytes(32).hex()],
                "\x00" * 64,
            )
        )
        forged: dict[str, Any] = {
            "x-fast-app-signature": signature,
            "x-fast-app-attempt": rng.choice((0, -1, 2**63 - 1, "2", 1.5, None)),
            "x-fast-app-soft-timeout-s": rng.choice((0.0, -1.0, 3.4e38, "x", 2**63 - 1)),
            "x-fast-app-hard-timeout-s": rng.choice((0.0, -1.0, 1e-45, "x", None)),
            "x-fast-app-dead-reason": rng.choice(("failed", "bad_signature", "\x1b[2J", 5, None)),
            "x-fast-app-error-type": self._property_text(60),
            "x-fast-app-error": rng.choice(
                (self._property_text(60), "e" * 60_000, bytearray(b"\xff\xfe"))
            ),
            "x-fast-app-traceback": rng.choice(("Traceback (most recent call last):\n" * 500, 5)),
            "x-fast-app-attempts": rng.choice((-1, 2**63 - 1, "3", True, None, 1.5)),
            "x-fast-app-worker": self._property_text(40),
            "x-fast-app-failed-at": rng.choice(
                (
                    "not a date",
                    "9999-12-31T23:59:59+00:00",
                    "0001-01-01",
                    dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
                    2**63 - 1,
                    None,
                    "2024-02-30T25:61:61",
                )
            ),
            "x-fast-app-dead-signature": rng.choice((rng.randbytes(32).hex(), 5, "")),
            "x-fast-app-signed-job": rng.choice((1, 0, True, "1", None)),
            "x-delivery-count": rng.choice((0, -1, 2**63 - 1, "10", None)),
            "x-death": rng.choice(
                (
                    [{"reason": "expired", "time": dt.datetime(9999, 1, 1, tzinfo=dt.UTC)}],
                    [{"time": "yesterday", "reason": 5}],
                    [],
                    "x-death",
                    {"reason": "rejected"},
                )
            ),
            "traceparent": rng.choice(
                ("00-" + "0" * 32 + "-" + "0" * 16 + "-01", "zz", "\x00", "00-" + "f" * 1000, 5)
            ),
            "tracestate": self._property_text(60),
            "baggage": rng.choice(("a=b", "=" * 1000, "\x00")),
        }
        names = rng.sample(sorted(forged), rng.randint(1, len(forged)))
        return {name: forged[name] for name in names}

    def _huge_table(self) -> dict[str, Any]:
        """A header table of ~100 KB: one long string, or thousands of small values."""
        rng = self._rng
        size = self._big(100_000)
        if rng.random() < 0.5:
            return {self._key(): "h" * size}
        small: tuple[Any, ...] = (True, -1, 2**40, 1.5, None, "v" * 20, bytearray(b"\xff"))
        return {f"k{i}": rng.choice(small) for i in range(size // 32)}

    # -- raw encoding: what pamqp never writes ----------------------------------------------

    def _raw_key(self) -> bytes:
        rng = self._rng
        return rng.choice(
            (
                b"k" + str(rng.randint(0, 999)).encode(),
                rng.randbytes(rng.randint(0, 20)),
                b"\xff\xfe",
                b"x-fast-app-signature",
                b"x-fast-app-attempt",
                b"x-delivery-count",
                b"",
                b"k" * 255,
            )
        )

    def _raw_text(self) -> bytes:
        rng = self._rng
        return rng.choice(
            (
                b"text",
                b"\x00\x1b[2J",
                rng.choice(_INVALID_UTF8) * rng.randint(1, 5),
                "é😀".encode(),
                rng.randbytes(rng.randint(0, 64)),
                b"\xed\xa0\x80",
            )
        )

    def _raw_value(self, depth: int) -> bytes:
        rng = self._rng
        codes = "tbBsuIilLfdDSxTV" + ("FA" if depth > 0 else "")
        if rng.random() < 0.003:
            codes = "Zz?\x00"  # field types AMQP does not have: the broker refuses them
        code = rng.choice(codes)
        timestamps = (0, int(time.time()), 2**32 - 1, 2**32, 253_402_300_800, 2**63, 2**64 - 1)
        payload: bytes
        match code:
            case "t":
                payload = bytes([rng.choice((0, 1, 2, 255))])
            case "b" | "B":
                payload = bytes([rng.randrange(256)])
            case "s" | "u":
                payload = rng.randbytes(2)
            case "I" | "i":
                payload = rng.randbytes(4)
            case "f":  # not NaN nor infinite, which RabbitMQ cannot parse
                payload = struct.pack(">f", rng.choice((1.5, -0.0, 3.4e38, 1e-45)))
            case "l" | "L":
                payload = rng.randbytes(8)
            case "d":
                payload = struct.pack(">d", rng.choice((0.0, -0.0, 1e308, 5e-324, rng.random())))
            case "D":
                payload = bytes([rng.choice((0, 2, 20, 255))]) + rng.randbytes(4)
            case "S" | "x":
                payload = _longstr(self._raw_text())
            case "T":
                payload = struct.pack(">Q", rng.choice(timestamps))
            case "F":
                payload = self._raw_table(rng.randint(0, 4), depth - 1, None)
            case "A":
                payload = _longstr(
                    b"".join(self._raw_value(depth - 1) for _ in range(rng.randint(0, 4)))
                )
            case _:
                payload = b""
        return code.encode("latin-1") + payload

    def _raw_table(self, entries: int, depth: int, index: int | None) -> bytes:
        fields = [_shortstr(self._raw_key()) + self._raw_value(depth) for _ in range(entries)]
        if index is not None:  # the top level: now and then, arrays nested thousands deep
            fields.append(_shortstr(b"x-fuzz-index") + b"l" + struct.pack(">q", index))
            if self._rng.random() < 0.05:
                levels = self._rng.choice((100, 5_000, 20_000))
                fields.append(_shortstr(b"deep") + _nested_arrays(levels))
        return _longstr(b"".join(fields))

    def _raw_properties(self, index: int) -> bytes:
        """Encoded properties: any of them, each with raw (maybe invalid) bytes."""
        rng = self._rng
        now = int(time.time())
        layout: list[tuple[int, Callable[[], bytes]]] = [
            (0x8000, lambda: _shortstr(rng.choice((CONTENT_TYPE.encode(), self._raw_text())))),
            (0x4000, lambda: _shortstr(self._raw_text())),  # content_encoding
            (0x2000, lambda: self._raw_table(rng.randint(0, 6), 2, index)),  # headers
            (0x1000, lambda: bytes([rng.choice((1, 2, 1, 2, 1, 2, 0, 255))])),  # delivery_mode
            (0x0800, lambda: bytes([rng.choice((0, 9, 255))])),  # priority
            (0x0400, lambda: _shortstr(self._raw_text())),  # correlation_id
            (0x0200, lambda: _shortstr(self._raw_text())),  # reply_to
            (0x0100, lambda: _shortstr(rng.choice((b"60000", b"0", b"-1", b"soon")))),  # expiration
            (0x0080, lambda: _shortstr(rng.choice((f"fuzz-{index}".encode(), self._raw_text())))),
            (0x0040, lambda: struct.pack(">Q", rng.choice((now, 0, 2**32, 2**63, 2**64 - 1)))),
            (
                0x0020,
                lambda: _shortstr(rng.choice((b"farm_jobs.record", self._raw_text()))),
            ),  # type
            (0x0010, lambda: _shortstr(rng.choice((b"guest", b"someone-else")))),  # user_id
            (0x0008, lambda: _shortstr(self._raw_text())),  # app_id
            (0x0004, lambda: _shortstr(self._raw_text())),  # cluster_id
        ]
        rare = {0x0100, 0x0010}  # the broker checks these, and closes the channel over them
        flags, parts = 0, []
        for flag, make in layout:
            if rng.random() < (0.05 if flag in rare else 0.5):
                flags |= flag
                parts.append(make())
        return struct.pack(">H", flags) + b"".join(parts)


_SIGNATURE_KINDS = ("job", "command", "tombstone", "snapshot")
_SIGNED_AS = {
    "envelope_mutated": "job",
    "envelope_forbidden": "job",
    "envelope_valid": "job",
    "command_malformed": "command",
    "command_unsigned": "command",
    "tombstone_malformed": "tombstone",
    "tombstone_unsigned": "tombstone",
    "snapshot": "snapshot",
}
#: Content a farm must refuse even when it is rightly signed.
_SIGNED_YET_REFUSED = frozenset({"envelope_forbidden", "command_malformed", "tombstone_malformed"})


def _workers_of(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The worker entries of a snapshot (maybe scrambled already), at least one."""
    workers = snapshot.get("workers")
    entries: list[dict[str, Any]] = []
    if isinstance(workers, list):
        entries = [worker for worker in workers if isinstance(worker, dict)]
    return entries or [{}]


def _sign_as(kind: str, body: bytes, key: bytes) -> str:
    """The signature a holder of ``key`` gives ``body`` as a message of ``kind``."""
    if kind == "job":
        return sign(body, key)
    return message_signature(kind, body, key)  # type: ignore[arg-type]


def _fallback_snapshot(farm: FarmUnderFuzz) -> dict[str, Any]:
    """A snapshot of the farm's shape, when no real one was captured."""
    now = time.time()
    worker = {
        "worker_id": f"{farm.supervisor_id}-w1",
        "pid": 1,
        "state": "idle",
        "in_flight": [],
        "in_flight_count": 0,
        "counters": {"succeeded": 1},
        "rss_bytes": 1,
        "uptime_s": 1.0,
        "heartbeat_age_s": 0.1,
        "rate": None,
    }
    return {
        "type": "snapshot",
        "supervisor_id": farm.supervisor_id,
        "host": "host",
        "pid": 1,
        "at": now,
        "started_at": now - 10,
        "settings": {
            "queue": farm.queue_name,
            "min_workers": 2,
            "max_workers": 2,
            "concurrency": 16,
            "heartbeat_interval_s": 0.2,
        },
        "desired_workers": 2,
        "paused": False,
        "stopping": False,
        "stopped": False,
        "workers": [worker],
        "queue": {"ready": 0, "unacked": 0, "consumers": 2, "dead": 0, "delayed": 0},
        "completion_rate": 0.0,
        "enqueue_rate": 0.0,
        "decisions": [],
        "failures": [],
        "recent_jobs": {"succeeded": [], "failed": []},
        "events": [],
    }


def _nested_arrays(levels: int) -> bytes:
    """A field value of ``levels`` arrays nested in each other (5 bytes a level)."""
    # Level k from the inside holds 5 * (k - 1) bytes of inner arrays and the void inside.
    openings = (b"A" + struct.pack(">I", 1 + 5 * (level - 1)) for level in range(levels, 0, -1))
    return b"".join(openings) + b"V"


def _shortstr(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def _longstr(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def _unsendable(properties: Basic.Properties, routing_key: str) -> str | None:
    """Why a message cannot leave this client, or ``None`` when it can."""
    try:
        encoded_key = routing_key.encode("utf-8")
    except UnicodeEncodeError:
        return "routing key not encodable"
    if len(encoded_key) > 255:
        return "routing key over 255 bytes"
    size = len(properties.marshal())  # raises for values pamqp cannot encode
    if size + _HEADER_FRAME_OVERHEAD > _FRAME_MAX:
        return f"properties of {size} bytes exceed frame_max"
    return None


class _Publisher:
    """A confirming channel, reopened (on a new connection if need be) after a refusal."""

    def __init__(self, url: str, topology: Topology, connection_name: str) -> None:
        self._url = url
        self._topology = topology
        self._connection_name = connection_name
        self._connection: Any = None
        self._channel: Any = None

    async def open(self) -> None:
        """A channel on the connection, or on a new one if the broker closed it."""
        for attempt in range(5):
            try:
                await self._open()
                return
            except Exception:
                await self.close()
                self._connection = None
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _open(self) -> None:
        import aio_pika

        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(
                self._url, client_properties={"connection_name": self._connection_name}
            )
        channel = await self._connection.channel(publisher_confirms=True)
        await self._topology.declare(channel)
        await self._topology.declare_delay(channel, DELAY_LEVEL_MS)
        self._channel = await channel.get_underlay_channel()

    async def publish(self, message: FuzzMessage, exchange: str) -> None:
        await self._channel.basic_publish(
            message.body,
            exchange=exchange,
            routing_key=message.routing_key,
            properties=message.properties,
            timeout=30,
        )

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            with contextlib.suppress(Exception):
                await self._connection.close()


def _exchange(topology: Topology, target: str) -> str:
    return {
        "jobs": "",
        "delay": "",
        "dead": topology.dead_exchange,
        "events": topology.events_exchange,
        "control": topology.control_exchange,
        "tombstones": topology.tombstones_exchange,
    }[target]


async def publish_fuzz(
    url: str,
    topology: Topology,
    messages: Iterable[FuzzMessage],
    *,
    connection_name: str = "fast-app fuzz",
    journal: TextIO | None = None,
    accounting: Accounting | None = None,
) -> Accounting:
    """Publish ``messages`` one at a time, each confirmed; count what happened to each.

    A message the client cannot encode is counted as not sendable and skipped; one over
    which the broker closes the channel (or the connection) is counted as refused, and
    publishing goes on over a new channel.

    Args:
        url: the broker.
        topology: the farm's queues and exchanges.
        messages: what to send (made lazily: a generator may use what happens meanwhile).
        connection_name: how the broker names the connection.
        journal: where to write a line describing each message.
        accounting: counts to add to (a new one by default).
    """
    accounting = accounting if accounting is not None else Accounting()
    publisher = _Publisher(url, topology, connection_name)
    # aiormq logs each connection the broker closes over a message, with a traceback.
    client_logger = logging.getLogger("aiormq")
    level = client_logger.level
    client_logger.setLevel(logging.CRITICAL)
    await publisher.open()
    try:
        for message in messages:
            if journal is not None:
                journal.write(json.dumps(message.describe()) + "\n")
            if message.problem is not None or message.properties is None:
                accounting.count("not_sendable", message)
                continue
            try:
                await publisher.publish(message, _exchange(topology, message.target))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                accounting.count("refused", message)
                accounting.refusals.append(
                    f"#{message.index} {message.target}/{message.kind}/{message.header_kind}: "
                    f"{type(error).__name__}: {str(error)[:160]}"
                )
                await publisher.open()
                continue
            accounting.count("sent", message)
    finally:
        await publisher.close()
        client_logger.setLevel(level)
    return accounting
