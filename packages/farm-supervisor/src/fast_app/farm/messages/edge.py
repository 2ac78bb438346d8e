"""Where a control-plane message enters a process: verified, decoded, or refused.

Every consumer of commands, tombstones and snapshots goes through ``decode_at_edge``:
with a signing key the message must be signed for its kind; it must decode strictly;
otherwise it is counted in ``refusals`` (and logged once per interval) and ``None`` is
returned. Nothing in the message can make it raise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fast_app.core.queue.amqp.headers import SIGNATURE
from fast_app.farm.messages._signing import MessageKind, signed_by
from fast_app.farm.messages.refusals import Refusals

__all__ = ["decode_at_edge"]

T = TypeVar("T")


def decode_at_edge(
    kind: MessageKind,
    body: bytes,
    headers: Mapping[str, Any] | None,
    *,
    key: bytes | None,
    decode: Callable[[bytes], T],
    refusals: Refusals,
) -> T | None:
    """The message of ``kind`` in ``body``, or ``None`` when it is refused.

    Args:
        kind: what the message must be (its signature covers the kind).
        body: the message body.
        headers: its AMQP headers (the signature is one).
        key: the farm's signing key; ``None`` accepts unsigned messages.
        decode: the strict decoder of ``kind``.
        refusals: where a refusal is counted.
    """
    try:
        if key is not None and not signed_by(kind, body, (headers or {}).get(SIGNATURE), key):
            refusals.refuse(kind, "unsigned")
            return None
        return decode(body)
    except Exception as error:  # malformed, of any kind: the edge never raises
        refusals.refuse(kind, "malformed", f"{type(error).__name__}: {error}")
        return None
