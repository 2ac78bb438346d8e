"""Header tables nested deeper than a frame's worth of recursion are read, not fatal."""

from __future__ import annotations

import sys

from pamqp import decode, encode

from fast_app.core.queue.amqp import MAX_TABLE_DEPTH, guard_table_depth


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
    guard_table_depth()
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
    guard_table_depth()
    table = nested(MAX_TABLE_DEPTH // 2 - 1, "leaf")

    assert decode.field_table(encoded(table))[1] == table
