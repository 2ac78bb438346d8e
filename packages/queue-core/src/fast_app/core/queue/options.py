"""The special ``__name`` keyword arguments of ``queue()``, turned into ``JobOptions``."""

from __future__ import annotations

import math
from typing import Any

from .envelope import MAX_RETRIES, MAX_SECONDS, JobOptions
from .errors import JobValidationError
from .queues import check_queue_name

__all__ = ["SPECIAL_KWARGS", "split_options"]

SPECIAL_KWARGS: tuple[str, ...] = (
    "__soft_timeout_s",
    "__hard_timeout_s",
    "__delay_s",
    "__retries",
    "__queue",
)

_NO_OPTIONS = JobOptions()


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobValidationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_SECONDS:
        raise JobValidationError(
            f"{name} must be a positive number of seconds, at most {MAX_SECONDS:g}, got {value!r}"
        )
    return seconds


def _seconds_or_zero(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobValidationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise JobValidationError(
            f"{name} must be zero or more seconds, at most {MAX_SECONDS:g}, got {value!r}"
        )
    return seconds


def _retry_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobValidationError(f"__retries must be a whole number, got {value!r}")
    if not 0 <= value <= MAX_RETRIES:
        raise JobValidationError(f"__retries must be between 0 and {MAX_RETRIES}, got {value}")
    return value


def _queue_name(value: object) -> str:
    try:
        return check_queue_name(value)
    except ValueError as error:
        raise JobValidationError(f"__queue: {error}") from None


def split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], JobOptions, str | None]:
    """Separate the special ``__name`` kwargs from the function's own kwargs.

    Returns:
        The function's kwargs, the job's options, and the queue named by ``__queue``
        (``None`` when the call names none).

    Raises:
        JobValidationError: for an unknown ``__name`` (the prefix is reserved) or an
            invalid value.
    """
    if not any(name.startswith("__") for name in kwargs):
        return kwargs, _NO_OPTIONS, None
    function_kwargs: dict[str, Any] = {}
    special: dict[str, Any] = {}
    for name, value in kwargs.items():
        if not name.startswith("__"):
            function_kwargs[name] = value
        elif name in SPECIAL_KWARGS:
            special[name] = value
        else:
            known = ", ".join(SPECIAL_KWARGS)
            raise JobValidationError(
                f"unknown special keyword argument {name!r}: names starting with '__' are "
                f"reserved for queue options ({known})"
            )
    soft = special.get("__soft_timeout_s")
    hard = special.get("__hard_timeout_s")
    soft_s = None if soft is None else _positive_seconds("__soft_timeout_s", soft)
    hard_s = None if hard is None else _positive_seconds("__hard_timeout_s", hard)
    if soft_s is not None and hard_s is not None and hard_s <= soft_s:
        raise JobValidationError(
            f"__hard_timeout_s ({hard_s:g}) must be greater than __soft_timeout_s ({soft_s:g})"
        )
    delay = special.get("__delay_s")
    delay_s = None if delay is None else _seconds_or_zero("__delay_s", delay) or None
    retries = special.get("__retries")
    options = JobOptions(
        soft_timeout_s=soft_s,
        hard_timeout_s=hard_s,
        delay_s=delay_s,
        retries=0 if retries is None else _retry_count(retries),
    )
    queue = special.get("__queue")
    return function_kwargs, options, None if queue is None else _queue_name(queue)
