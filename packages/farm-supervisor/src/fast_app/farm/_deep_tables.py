"""Room for the deepest header table a frame can hold, so that reading one never fails.

pamqp decodes AMQP field tables recursively, two Python calls per level. A header table
nested a few thousand levels deep (anyone who may publish can send one; it fits in a
7-byte-per-level frame) passes Python's default recursion limit of 1000: aiormq's frame
reader raises, the connection drops, the broker redelivers the same message, and a
worker loops on it until a quorum queue's delivery limit, forever on a classic queue.
Each fast-app process raises the limit once, at start, to what the largest frame can
nest (``frame_max`` 131,072 bytes, at least 5 bytes per level of arrays), so the message
is read and settled like any other. Python calls between Python functions do not use the
C stack, so the deeper limit costs only the frames actually used.
"""

from __future__ import annotations

import sys

__all__ = ["DEEP_TABLE_RECURSION_LIMIT", "allow_deep_amqp_tables"]

_FRAME_MAX = 131_072
_MIN_BYTES_PER_LEVEL = 5  # an array: type byte and 4-byte length
_CALLS_PER_LEVEL = 2
#: The recursion limit that decoding the deepest possible header table needs, with room.
DEEP_TABLE_RECURSION_LIMIT = (_FRAME_MAX // _MIN_BYTES_PER_LEVEL) * _CALLS_PER_LEVEL + 5_000


def allow_deep_amqp_tables() -> None:
    """Raise this process's recursion limit to ``DEEP_TABLE_RECURSION_LIMIT`` (never lower it)."""
    if sys.getrecursionlimit() < DEEP_TABLE_RECURSION_LIMIT:
        sys.setrecursionlimit(DEEP_TABLE_RECURSION_LIMIT)
