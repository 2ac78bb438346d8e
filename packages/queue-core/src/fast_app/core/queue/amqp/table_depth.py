"""A depth limit for the AMQP header tables this process decodes.

pamqp decodes field tables and arrays recursively, a few Python calls per level. A
header table nested a few thousand levels deep (anyone who may publish can send one: at
5 to 7 bytes a level, it fits in a frame) passes Python's recursion limit inside
aiormq's frame reader: the connection drops, the broker redelivers the same message, and
a worker loops on it until a quorum queue's delivery limit, forever on a classic one.
Raising the recursion limit is no cure: C decoders (msgspec, json) rely on it to stop
before the C stack ends, and would crash the process on a deep JSON body instead.

``guard_table_depth`` makes pamqp skip what lies deeper than ``MAX_TABLE_DEPTH`` levels:
tables and arrays carry their length, so a too-deep one is stepped over and read as
empty. No header this project uses is nested more than three levels (``x-death``).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_TABLE_DEPTH", "guard_table_depth"]

#: Tables and arrays nested deeper than this are read as empty.
MAX_TABLE_DEPTH = 32

_LENGTH = struct.Struct(">I")
_depth = threading.local()
_lock = threading.Lock()
_guarded = False

_Decoder = Callable[[bytes], tuple[int, Any]]


def _limited(decode: _Decoder, empty: Callable[[], Any]) -> _Decoder:
    def decode_within_depth(value: bytes) -> tuple[int, Any]:
        depth: int = getattr(_depth, "level", 0)
        if depth >= MAX_TABLE_DEPTH:
            if len(value) < _LENGTH.size:
                raise ValueError("Could not unpack data")
            end = _LENGTH.size + _LENGTH.unpack_from(value)[0]
            if end > len(value):
                raise ValueError("Field table length exceeds available data")
            return end, empty()
        _depth.level = depth + 1
        try:
            return decode(value)
        finally:
            _depth.level = depth

    return decode_within_depth


def guard_table_depth() -> None:
    """Install the limit in pamqp's decoder, for the whole process (idempotent)."""
    global _guarded
    from pamqp import decode

    with _lock:
        if _guarded:
            return
        decode.TABLE_MAPPING[b"F"] = _limited(decode.field_table, dict)
        decode.TABLE_MAPPING[b"A"] = _limited(decode.field_array, list)
        _guarded = True
