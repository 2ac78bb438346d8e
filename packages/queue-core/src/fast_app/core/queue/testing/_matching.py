"""Comparing a recorded job's arguments with the ones a test expects, by parameter name."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from fast_app.core.queue.functions import FunctionSpec

__all__ = ["describe_call", "expected_arguments", "mismatches", "received_arguments"]

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def expected_arguments(
    spec: FunctionSpec, args: Sequence[Any], kwargs: Mapping[str, Any], *, exact: bool
) -> dict[str, Any]:
    """Name the arguments a test expects, as the function would bind them.

    With ``exact``, the call must be complete and the defaults it leaves out are added,
    so that it compares equal to the same call spelt another way.

    Raises:
        TypeError: the expected arguments could not be a call of the function (a typo in
            a keyword, too many positional arguments): the test itself is wrong.
    """
    try:
        named = spec.name_arguments(args, kwargs, partial=not exact)
    except TypeError as error:
        raise TypeError(
            f"the expected arguments do not fit {spec.path}{spec.signature}: {error}"
        ) from None
    return _with_defaults(spec, named) if exact else named


def received_arguments(
    spec: FunctionSpec, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Name the arguments a recorded job's function will receive, defaults included."""
    return _with_defaults(spec, spec.name_arguments(args, kwargs))


def mismatches(
    expected: Mapping[str, Any], received: Mapping[str, Any], *, exact: bool
) -> list[str]:
    """Why ``received`` does not match ``expected``; empty when it does.

    Each expected value is compared with the expected one on the left
    (``expected != received``), so that ``unittest.mock.ANY`` and other matchers decide.
    With ``exact``, arguments received but not expected are mismatches too.
    """
    problems: list[str] = []
    for name, value in expected.items():
        if name not in received:
            problems.append(f"{name} not given")
        elif value != received[name]:
            problems.append(f"{name}={received[name]!r}, expected {value!r}")
    if exact:
        problems.extend(
            f"{name}={received[name]!r} not expected" for name in received if name not in expected
        )
    return problems


def describe_call(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """A call's arguments as Python would spell them: ``('a', 1, key='b')``."""
    parts = [repr(value) for value in args]
    parts.extend(f"{key}={value!r}" for key, value in kwargs.items())
    return f"({', '.join(parts)})"


def _with_defaults(spec: FunctionSpec, named: dict[str, Any]) -> dict[str, Any]:
    # Defaults are what the function receives when an argument is left out.
    completed = dict(named)
    for parameter in spec.signature.parameters.values():
        if (
            parameter.kind not in _VARIADIC
            and parameter.default is not inspect.Parameter.empty
            and parameter.name not in completed
        ):
            completed[parameter.name] = parameter.default
    return completed
