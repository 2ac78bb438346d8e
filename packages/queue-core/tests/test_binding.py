"""SignatureShape answers exactly as inspect.Signature.bind does, for every kind of signature."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from fast_app.core.queue._binding import SignatureShape


def plain(a, b, c=3):  # type: ignore[no-untyped-def]
    pass


def keyword_only(a, *, b, c=3):  # type: ignore[no-untyped-def]
    pass


def positional_only(a, b=2, /, c=3):  # type: ignore[no-untyped-def]
    pass


def var_both(a, *rest, b=2, **extra):  # type: ignore[no-untyped-def]
    pass


def positional_only_with_var_keyword(a, /, **extra):  # type: ignore[no-untyped-def]
    pass


def nothing():  # type: ignore[no-untyped-def]
    pass


ARG_COUNTS = range(5)
KEYWORD_SETS = [
    (),
    ("a",),
    ("b",),
    ("c",),
    ("a", "b"),
    ("b", "c"),
    ("z",),
    ("a", "b", "c"),
    ("c", "z"),
]


@pytest.mark.parametrize(
    "function",
    [plain, keyword_only, positional_only, var_both, positional_only_with_var_keyword, nothing],
)
def test_shape_agrees_with_signature_bind(function: Callable[..., Any]) -> None:
    signature = inspect.signature(function)
    shape = SignatureShape.of(signature)

    for count, keywords in itertools.product(ARG_COUNTS, KEYWORD_SETS):
        args = list(range(count))
        kwargs = dict.fromkeys(keywords, 0)
        try:
            signature.bind(*args, **kwargs)
            expected = True
        except TypeError:
            expected = False
        assert shape.binds(args, kwargs) is expected, (function.__name__, args, kwargs)


def test_parameter_names_for_positions_and_keywords() -> None:
    shape = SignatureShape.of(inspect.signature(var_both))

    assert shape.name_of_positional(0) == "a"
    assert shape.name_of_positional(3) == "rest"
    assert shape.name_of_keyword("b") == "b"
    assert shape.name_of_keyword("other") == "extra"
