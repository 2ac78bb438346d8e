"""What the supervisor and its worker template say over their control socket.

A ``SOCK_SEQPACKET`` socket pair: one message a packet, msgpack-encoded, each one of the
Structs below (tagged by ``kind``). The supervisor sends ``SpawnRequest`` with the
worker's file descriptors attached (``socket.send_fds``); the template answers with the
others. Both sides decode strictly and refuse, count and log what does not decode: the
template distrusts the supervisor's packets as the supervisor distrusts the template's.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from fast_app.farm.messages._bounds import Count, Elapsed, Line, Name, Pid

__all__ = [
    "REQUEST_MAX_BYTES",
    "TEMPLATE_EXIT_IMPORT_FAILED",
    "TEMPLATE_EXIT_THREADS",
    "TEMPLATE_MESSAGE_MAX_BYTES",
    "Exited",
    "ImportFailed",
    "Ready",
    "SpawnFailed",
    "SpawnRequest",
    "Spawned",
    "TemplateMessage",
    "ThreadsRunning",
    "decode_spawn_request",
    "decode_template_message",
    "encode",
]

#: The largest spawn request (most of it: the worker's environment). A packet must fit in
#: the socket's send buffer (about 200 KiB by default on Linux).
REQUEST_MAX_BYTES = 128 * 1024
#: The largest packet the template sends.
TEMPLATE_MESSAGE_MAX_BYTES = 16 * 1024

#: The template's exit code when an application module could not be imported.
TEMPLATE_EXIT_IMPORT_FAILED = 4
#: The template's exit code when a thread runs after the imports (forking is unsafe).
TEMPLATE_EXIT_THREADS = 5

# Linux limits one environment string to 128 KiB (MAX_ARG_STRLEN); the request's bound
# keeps the whole environment far below it.
_Variable = Annotated[bytes, Meta(min_length=1, max_length=1024)]
_Value = Annotated[bytes, Meta(max_length=REQUEST_MAX_BYTES)]


class SpawnRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="spawn"):
    """Fork a worker. Its link socket comes attached, then its output pipe if captured.

    Attributes:
        worker_id: its name (``FARM_WORKER_ID``).
        environment: its whole environment, as bytes (``os.environb``): the settings it
            reads at start.
        captured: an output pipe is attached; its stdout and stderr go there.
    """

    worker_id: Name
    environment: Annotated[dict[_Variable, _Value], Meta(max_length=4096)]
    captured: bool = False


class Ready(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="ready"):
    """The template imported everything and serves spawn requests."""

    pid: Pid
    import_s: Elapsed
    modules: Count


class ImportFailed(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="import_failed"):
    """An application module (``FARM_IMPORTS``) could not be imported; the template exits."""

    module: Line
    error: Line


class ThreadsRunning(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="threads_running"
):
    """Threads run after the imports (an application module started them): forking is
    unsafe, the template exits."""

    count: Count
    names: Annotated[list[Line], Meta(max_length=16)]


class Spawned(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="spawned"):
    """Worker ``worker_id`` runs as process ``pid``."""

    worker_id: Name
    pid: Pid


class SpawnFailed(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="spawn_failed"):
    """Worker ``worker_id`` could not be forked (``None``: a request that did not decode)."""

    worker_id: Name | None
    error: Line


class Exited(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="exited"):
    """Process ``pid`` ended with ``returncode`` (asyncio's convention: ``-N`` when
    signal N killed it)."""

    pid: Pid
    returncode: Annotated[int, Meta(ge=-128, le=255)]


TemplateMessage = Ready | ImportFailed | ThreadsRunning | Spawned | SpawnFailed | Exited

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(SpawnRequest)
_message_decoder: msgspec.msgpack.Decoder[TemplateMessage] = msgspec.msgpack.Decoder(
    TemplateMessage
)


def encode(message: SpawnRequest | TemplateMessage) -> bytes:
    """One message as one packet."""
    return _encoder.encode(message)


def decode_spawn_request(packet: bytes) -> SpawnRequest:
    """A packet from the supervisor, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _request_decoder.decode(packet)


def decode_template_message(packet: bytes) -> TemplateMessage:
    """A packet from the template, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _message_decoder.decode(packet)
