"""AMQP properties and header tables decoded so that no message can break the connection.

aiormq decodes each frame with pamqp, strictly. A message that pamqp cannot decode —
a header key or a short-string property (message id, content type) that is not UTF-8,
a timestamp past the year 9999, a header table nested a few thousand levels deep (it
fits in a frame, at 5 to 7 bytes a level, and overflows the recursive decoder) — does
not fail alone: the frame reader raises, the connection drops, the broker redelivers
the same message, and every worker that receives it loops, until a quorum queue's
delivery limit (forever on a classic queue), taking its other jobs along each time.
RabbitMQ itself accepts all of these from any publisher.

``install_tolerant_decoding`` replaces, in pamqp's own dispatch tables, the decoders of
short strings, timestamps, tables and arrays with ones that cannot fail on the content
of a well-framed value: text that is not UTF-8 is read with U+FFFD in place of the bad
bytes, a timestamp out of range is read as ``None``, a table or array nested deeper
than ``MAX_TABLE_DEPTH`` is read as empty, and a value that cannot be read ends its
table or array (tables and arrays carry their length, so what follows is still found).
The message then reaches the consumer, which settles it (a worker dead-letters it as
``invalid``). Raising the recursion limit instead would be no cure: C decoders (msgspec,
json) rely on it to stop before the C stack ends.
"""

from __future__ import annotations

import datetime as dt
import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_TABLE_DEPTH", "install_tolerant_decoding"]

#: Tables and arrays nested deeper than this are read as empty. No header this project
#: uses is nested more than three levels (``x-death``).
MAX_TABLE_DEPTH = 32

_LENGTH = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">Q")
_SKIPPED = (ValueError, KeyError, IndexError, OverflowError, OSError, struct.error)
_depth = threading.local()
_lock = threading.Lock()
_installed = False


def _short_str(value: bytes) -> tuple[int, str]:
    if not value:
        raise ValueError("Could not unpack short string value")
    length = value[0]
    return length + 1, value[1 : length + 1].decode("utf-8", "replace")


def _timestamp(value: bytes) -> tuple[int, dt.datetime | None]:
    if len(value) < _TIMESTAMP.size:
        raise ValueError("Could not unpack timestamp value")
    seconds: float = _TIMESTAMP.unpack_from(value)[0]
    if seconds > 0xFFFFFFFF:  # as pamqp: past 2106, it is taken for milliseconds
        seconds /= 1000.0
    try:
        return _TIMESTAMP.size, dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return _TIMESTAMP.size, None


def _framed(value: bytes) -> int:
    """The end of the table or array at the start of ``value`` (its 4-byte length)."""
    if len(value) < _LENGTH.size:
        raise ValueError("Could not unpack data")
    end = _LENGTH.size + int(_LENGTH.unpack_from(value)[0])
    if end > len(value):
        raise ValueError("Field table length exceeds available data")
    return end


def _field_table(value: bytes) -> tuple[int, dict[str, Any]]:
    from pamqp.decode import embedded_value

    end = _framed(value)
    table: dict[str, Any] = {}
    depth: int = getattr(_depth, "level", 0)
    if depth >= MAX_TABLE_DEPTH:
        return end, table
    _depth.level = depth + 1
    offset = _LENGTH.size
    try:
        while offset < end:
            key_length = value[offset]
            key = value[offset + 1 : offset + 1 + key_length].decode("utf-8", "replace")
            offset += 1 + key_length
            consumed, item = embedded_value(value[offset:end])
            offset += consumed
            table[key] = item
    except _SKIPPED:
        pass  # the rest of this table is unreadable; the frame goes on after it
    finally:
        _depth.level = depth
    return end, table


def _field_array(value: bytes) -> tuple[int, list[Any]]:
    from pamqp.decode import embedded_value

    end = _framed(value)
    array: list[Any] = []
    depth: int = getattr(_depth, "level", 0)
    if depth >= MAX_TABLE_DEPTH:
        return end, array
    _depth.level = depth + 1
    offset = _LENGTH.size
    try:
        while offset < end:
            consumed, item = embedded_value(value[offset:end])
            if consumed == 0:
                break
            offset += consumed
            array.append(item)
    except _SKIPPED:
        pass
    finally:
        _depth.level = depth
    return end, array


def install_tolerant_decoding() -> None:
    """Use the tolerant decoders in pamqp, for the whole process (idempotent)."""
    global _installed
    from pamqp import decode

    with _lock:
        if _installed:
            return
        replacements: dict[str, Callable[[bytes], tuple[int, Any]]] = {
            "shortstr": _short_str,
            "timestamp": _timestamp,
            "table": _field_table,
            "array": _field_array,
        }
        decode.METHODS.update(replacements)
        decode.TABLE_MAPPING.update({b"T": _timestamp, b"F": _field_table, b"A": _field_array})
        # The module's names too, for whoever calls them directly.
        decode.short_str = _short_str
        decode.timestamp = _timestamp  # type: ignore[assignment]
        decode.field_table = _field_table
        decode.field_array = _field_array
        _installed = True
