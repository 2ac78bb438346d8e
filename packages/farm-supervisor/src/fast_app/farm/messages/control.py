"""Commands to one supervisor, on ``<queue>.control`` (routing key: the supervisor's id).

Each command says who sent it and when, and carries a random id: a supervisor ignores a
command older than ``COMMAND_MAX_AGE_S`` (or as far in the future) and one whose id it
has already obeyed, so that a signed command read off the broker cannot be replayed.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from fast_app.farm.messages._bounds import JobId, Line, Moment, Name, WorkerLimit
from fast_app.farm.messages.refusals import Reason

__all__ = [
    "COMMAND_MAX_AGE_S",
    "CancelJob",
    "Command",
    "CommandGate",
    "DrainWorker",
    "PauseFarm",
    "RestartWorker",
    "ResumeFarm",
    "SetLimits",
    "Shutdown",
    "command_from_dict",
    "decode_command",
    "default_sender",
    "describe_command",
    "encode_command",
]

#: A command older than this (or this far in the future: clocks differ) is ignored.
COMMAND_MAX_AGE_S = 300.0

_CommandId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]


class _Base(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", kw_only=True
):
    sender: Line = "unknown"
    sent_at: Moment = 0.0
    id: _CommandId = ""


class SetLimits(_Base, frozen=True, tag="set_limits"):
    """Keep between ``min_workers`` and ``max_workers`` (either may be left as it is):
    the limits of ``queue``'s pool, or without a queue the supervisor's overall ones."""

    min_workers: WorkerLimit | None = None
    max_workers: WorkerLimit | None = None
    queue: Name | None = None


class DrainWorker(_Base, frozen=True, tag="drain_worker"):
    """Drain one worker for good (the pool refills only if the load asks for it)."""

    worker_id: Name


class RestartWorker(_Base, frozen=True, tag="restart_worker"):
    """Start a replacement, then drain the worker."""

    worker_id: Name


class PauseFarm(_Base, frozen=True, tag="pause"):
    """Every worker stops taking deliveries."""


class ResumeFarm(_Base, frozen=True, tag="resume"):
    """Every worker takes deliveries again."""


class Shutdown(_Base, frozen=True, tag="shutdown"):
    """Drain every worker and stop the supervisor."""


class CancelJob(_Base, frozen=True, tag="cancel_job"):
    """Cancel job ``job_id`` (its full id) if one of this supervisor's workers runs it.

    The worker cancels the job's task and dead-letters its delivery with reason
    ``cancelled``: never redelivered, never retried, requeueable by hand. A job running
    in a thread cannot be stopped, and is refused.
    """

    job_id: JobId


Command = SetLimits | DrainWorker | RestartWorker | PauseFarm | ResumeFarm | Shutdown | CancelJob

_decoder: msgspec.json.Decoder[Command] = msgspec.json.Decoder(Command)
_encoder = msgspec.json.Encoder()


def default_sender() -> str:
    """``host-pid``, this process's name as a command's sender."""
    return f"{socket.gethostname()}-{os.getpid()}"


def command_from_dict(fields: dict[str, Any], *, sender: str | None = None) -> Command:
    """A command from its fields (``{"command": "set_limits", "max_workers": 8}``), stamped
    with its sender, the time and a fresh id.

    Raises:
        msgspec.ValidationError: not a known command, or fields out of bounds.
    """
    stamped = {
        **fields,
        "sender": sender or default_sender(),
        "sent_at": time.time(),
        "id": os.urandom(16).hex(),
    }
    command: Command = msgspec.convert(stamped, Command)
    return command


def encode_command(command: Command) -> bytes:
    """The message body of ``command``."""
    return _encoder.encode(command)


def decode_command(body: bytes) -> Command:
    """A command, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _decoder.decode(body)


def describe_command(command: Command) -> str:
    """``set_limits min_workers=1 max_workers=8 from host-1234``: for events and logs."""
    name = type(command).__struct_config__.tag
    fields = [
        f"{field}={getattr(command, field)}"
        for field in command.__struct_fields__
        if field not in ("sender", "sent_at", "id") and getattr(command, field) is not None
    ]
    return " ".join([str(name), *fields, f"from {command.sender}"])


class CommandGate:
    """Admits each command once, and only while it is fresh.

    A command is refused when it was sent more than ``max_age_s`` ago (or that far
    ahead: clocks differ), or when a command with its id was admitted already: a copy
    read off the broker cannot be replayed, signed or not.

    Args:
        max_age_s: how old a command may be.
    """

    def __init__(self, max_age_s: float = COMMAND_MAX_AGE_S) -> None:
        self._max_age_s = max_age_s
        self._seen: dict[str, float] = {}  # command id -> when it stops mattering

    def refusal(self, command: Command, now: float) -> tuple[Reason, str] | None:
        """Why ``command`` must be ignored at Unix time ``now``; ``None`` admits it."""
        if abs(now - command.sent_at) > self._max_age_s:
            age = now - command.sent_at
            return "stale", f"{describe_command(command)} sent {age:+.0f}s from now"
        if not command.id:
            return "malformed", f"{describe_command(command)} has no id"
        self._seen = {key: until for key, until in self._seen.items() if until > now}
        if command.id in self._seen:
            return "replayed", f"{describe_command(command)} {command.id} was obeyed already"
        self._seen[command.id] = now + 2 * self._max_age_s
        return None
