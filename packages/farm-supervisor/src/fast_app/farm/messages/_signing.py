"""Signatures of the farm's control-plane messages (commands, tombstones, snapshots).

The same key as jobs (``ASYNC_FARM_SIGNING_KEY``), the same header, but over the kind
of message and its body: a signed snapshot can never pass for a command, nor a job for
either.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from fast_app.core.queue.amqp.headers import SIGNATURE, signature_matches

__all__ = ["SIGNATURE", "MessageKind", "message_signature", "signed_by"]

MessageKind = Literal["command", "tombstone", "snapshot"]


def message_signature(kind: MessageKind, body: bytes, key: bytes) -> str:
    """HMAC-SHA256 of ``kind`` and ``body`` under ``key``, as hex."""
    return hmac.new(key, f"fast-app {kind}\0".encode() + body, hashlib.sha256).hexdigest()


def signed_by(kind: MessageKind, body: bytes, signature: object, key: bytes) -> bool:
    """Whether ``signature`` (a header value of any type, maybe missing) is right."""
    return signature_matches(f"fast-app {kind}\0".encode() + body, signature, key)
