"""The supervisor's end of its template's control socket: requests out, replies in.

Every packet from the template is decoded strictly at this edge; one that does not
decode (or is too long) is counted in ``refusals`` and logged, never raised: a garbled
template costs at most the workers it would have forked, which then start fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence

import msgspec

from fast_app.farm.messages import Refusals
from fast_app.farm.template.messages import (
    REQUEST_MAX_BYTES,
    TEMPLATE_MESSAGE_MAX_BYTES,
    SpawnRequest,
    TemplateMessage,
    decode_template_message,
    encode,
)

__all__ = ["TemplateLink"]

logger = logging.getLogger("fast_app.farm.supervisor")


class TemplateLink:
    """Reads the template's messages on the running loop (once started); sends spawn
    requests.

    Args:
        control: the supervisor's end of a ``SOCK_SEQPACKET`` socket pair.
        refusals: where packets that do not decode are counted (``template_*``).
    """

    def __init__(self, control: socket.socket, *, refusals: Refusals) -> None:
        self._socket = control
        self._refusals = refusals
        self._closed = False
        self._on_message: Callable[[TemplateMessage], None] = lambda message: None
        self._on_closed: Callable[[], None] = lambda: None
        control.setblocking(False)
        self._loop = asyncio.get_running_loop()

    def start(
        self, *, on_message: Callable[[TemplateMessage], None], on_closed: Callable[[], None]
    ) -> None:
        """Read on the running loop: each message to ``on_message``, then ``on_closed``."""
        self._on_message = on_message
        self._on_closed = on_closed
        self._loop.add_reader(self._socket.fileno(), self._read)

    @property
    def closed(self) -> bool:
        """Whether the socket closed (or was closed)."""
        return self._closed

    def send_spawn(self, request: SpawnRequest, fds: Sequence[int]) -> None:
        """Send one spawn request with ``fds`` attached (duplicated into the template).

        Raises:
            OSError: the template is gone, or its socket is full.
            ValueError: the request is over ``REQUEST_MAX_BYTES`` (a huge environment).
        """
        if self._closed:
            raise ConnectionResetError("the template's control socket is closed")
        packet = encode(request)
        if len(packet) > REQUEST_MAX_BYTES:
            raise ValueError(f"spawn request of {len(packet)} bytes, over {REQUEST_MAX_BYTES}")
        socket.send_fds(self._socket, [packet], list(fds))

    def _read(self) -> None:
        while not self._closed:
            try:
                packet, _, flags, _ = self._socket.recvmsg(TEMPLATE_MESSAGE_MAX_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                packet, flags = b"", 0
            if not packet:  # the end of the socket: the template exited
                self.close()
                self._on_closed()
                return
            if flags & socket.MSG_TRUNC:
                self._refusals.refuse(
                    "template", "oversized", f"over {TEMPLATE_MESSAGE_MAX_BYTES} bytes"
                )
                continue
            try:
                message = decode_template_message(packet)
            except msgspec.DecodeError as error:
                self._refusals.refuse("template", "malformed", str(error))
                continue
            try:
                self._on_message(message)
            except Exception:  # a handler's bug must not end the reading
                logger.exception("handling the worker template's message failed")

    def close(self) -> None:
        """Stop reading and close the socket (the template sees its end and exits)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._socket.fileno())
        self._socket.close()
