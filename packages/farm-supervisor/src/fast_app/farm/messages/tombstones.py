"""Tombstones, on ``<queue>.tombstones``: a supervisor killed a worker for this job.

Whichever worker the broker redelivers the job to settles it as a hard timeout instead
of running it again. A tombstone only ever applies to a redelivered job (one whose
worker ended without settling it): a forged one cannot stop a fresh job from running.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

from fast_app.farm.messages._bounds import Function, JobId, Moment, Name

__all__ = ["Tombstone", "decode_tombstone", "encode_tombstone", "new_tombstone"]


class Tombstone(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="tombstone"):
    """Job ``job_id`` (of ``function``) was killed on ``worker`` at its hard timeout."""

    job_id: JobId
    function: Function
    worker: Name
    reason: Literal["hard_timeout"] = "hard_timeout"
    at: Moment = 0.0


_decoder = msgspec.json.Decoder(Tombstone)
_encoder = msgspec.json.Encoder()


def new_tombstone(job_id: str, function: str, worker: str) -> Tombstone:
    """A tombstone stamped with the time."""
    return Tombstone(job_id=job_id, function=function, worker=worker, at=time.time())


def encode_tombstone(tombstone: Tombstone) -> bytes:
    """The message body of ``tombstone``."""
    return _encoder.encode(tombstone)


def decode_tombstone(body: bytes) -> Tombstone:
    """A tombstone, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _decoder.decode(body)
