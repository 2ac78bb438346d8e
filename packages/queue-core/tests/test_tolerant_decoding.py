"""What pamqp could not decode (and so dropped the connection on) is read, not fatal."""

from __future__ import annotations

import datetime as dt
import struct
import sys

from pamqp import decode, encode

from fast_app.core.queue.amqp import MAX_TABLE_DEPTH, install_tolerant_decoding


def nested(depth: int, leaf: object) -> dict[str, object]:
    table: dict[str, object] = {"leaf": leaf}
    for level in range(depth):
        table = {"a": table} if level % 2 else {"l": [table]}
    return table


def encoded(table: dict[str, object]) -> bytes:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # pamqp encodes recursively too
    try:
        return encode.field_table(table)
    finally:
        sys.setrecursionlimit(limit)


def test_a_table_nested_thousands_deep_decodes_with_its_deep_part_empty() -> None:
    # Given a header table nested 10,000 levels deep (tables in arrays in tables)
    data = encoded({"x-death": [{"queue": "q", "count": 1}], "deep": nested(10_000, 1)})

    # When it is decoded with the guard installed (and Python's usual recursion limit)
    install_tolerant_decoding()
    consumed, table = decode.field_table(data)

    # Then the whole frame is consumed, the shallow headers are intact, and the deep part
    # stops at the limit
    assert consumed == len(data)
    assert table["x-death"] == [{"queue": "q", "count": 1}]
    depth, node = 0, table["deep"]
    while node:
        node = next(iter(node.values())) if isinstance(node, dict) else node[0]
        depth += 1
    assert MAX_TABLE_DEPTH - 2 <= depth <= MAX_TABLE_DEPTH + 1


def test_tables_within_the_limit_decode_unchanged() -> None:
    install_tolerant_decoding()
    table = nested(MAX_TABLE_DEPTH // 2 - 1, "leaf")

    assert decode.field_table(encoded(table))[1] == table


def framed(content: bytes) -> bytes:
    return struct.pack(">I", len(content)) + content


def test_a_table_key_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    install_tolerant_decoding()
    data = framed(b"\x03k\xffy" + b"t\x01" + b"\x02ok" + b"t\x00")

    assert decode.field_table(data) == (len(data), {"k\ufffdy": True, "ok": False})
    assert decode.by_type(data, "table") == (len(data), {"k\ufffdy": True, "ok": False})


def test_a_short_string_property_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    install_tolerant_decoding()

    assert decode.by_type(b"\x03a\x94b", "shortstr") == (4, "a\ufffdb")


def test_a_timestamp_out_of_range_is_read_as_none() -> None:
    install_tolerant_decoding()
    too_late = struct.pack(">Q", 2**63)

    assert decode.by_type(too_late, "timestamp") == (8, None)
    table = framed(b"\x01tT" + too_late)
    assert decode.field_table(table) == (len(table), {"t": None})
    assert decode.by_type(struct.pack(">Q", 0), "timestamp")[1] == dt.datetime(
        1970, 1, 1, tzinfo=dt.UTC
    )


def test_a_value_of_an_unknown_type_ends_its_table_and_the_rest_of_the_frame_is_read() -> None:
    install_tolerant_decoding()
    inner = framed(b"\x01at\x01" + b"\x01b?garbage")
    data = framed(b"\x05inner" + b"F" + inner + b"\x05after" + b"t\x01")

    assert decode.field_table(data) == (len(data), {"inner": {"a": True}, "after": True})
