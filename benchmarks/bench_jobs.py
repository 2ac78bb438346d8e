"""Job functions used by the benchmarks (a real module, so workers can import them)."""

from __future__ import annotations


async def three_args(user_id: str, count: int, ratio: float) -> None:
    """A no-op job with three simple arguments."""


def three_args_sync(user_id: str, count: int, ratio: float) -> None:
    """The same, as a plain function (runs in a thread)."""
