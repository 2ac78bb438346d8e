"""How the dashboard writes numbers, ages and deadlines: pure functions of their inputs."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "age",
    "clock_time",
    "coarse_age",
    "count",
    "deadline_bar",
    "error_message",
    "figure",
    "megabytes",
    "per_second",
    "plural",
    "seconds",
    "shorten",
    "short_id",
    "sparkline",
    "tail",
    "wait",
]

_BAR_FULL = "█"
_BAR_EMPTY = "░"
_SPARK_BARS = "▁▂▃▄▅▆▇█"


def age(value: float | None) -> str:
    """A duration, short: ``0.4s``, ``42s``, ``7m``, ``2.5h``, ``3d``; ``-`` when unknown."""
    if value is None:
        return "-"
    value = max(0.0, value)
    if value < 10:
        return f"{value:.1f}s"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    if value < 172_800:
        return f"{value / 3600:.1f}h"
    return f"{value / 86_400:.0f}d"


def wait(median: float | None, longest: float | None, *, approximate: bool = False) -> str:
    """A queue's wait, median and longest: ``0.3s/1.1s``; ``≈0.3s/1.1s`` when the median
    is estimated from several supervisors' (as ``fast-app status`` marks it); ``-`` when
    no job started."""
    if median is None and longest is None:
        return "-"
    return f"{'≈' if approximate else ''}{age(median)}/{age(longest)}"


def coarse_age(value: float) -> str:
    """A duration in whole seconds under two minutes (``0s``, ``7s``), else as ``age``.

    For ages shown on every refresh (heartbeats): a tenth of a second changing four times
    a second is noise, and redraws every row.
    """
    return f"{max(0.0, value):.0f}s" if value < 120 else age(value)


def seconds(value: float | None) -> str:
    """A job's duration: ``12ms``, ``1.25s``, ``3m``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.2f}s"
    return age(value)


def figure(value: int | None) -> str:
    """A count in full, ``1,840``; ``-`` when unknown."""
    return "-" if value is None else f"{value:,}"


def count(value: float | None) -> str:
    """A count, short: ``300``, ``1.8k``, ``12k``, ``2.5M``; ``-`` when unknown."""
    if value is None:
        return "-"
    value = max(0.0, value)
    for limit, divisor, suffix in ((1e6, 1e6, "M"), (1e3, 1e3, "k")):
        if value >= limit:
            scaled = value / divisor
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def sparkline(values: Sequence[float | None], width: int) -> tuple[str, float | None]:
    """Values over time as a line of bars, on a scale from 0 to their peak.

    Zero is ``▁`` and the peak ``█``; anything above zero is at least ``▂``, so that a
    few jobs next to a 300-job burst still show. A flat series is flat at its height
    (300 all along is all ``█``, not all ``▁``): the peak, returned, says what ``█`` is.

    Args:
        values: oldest first; ``None``: unknown then (a blank).
        width: cells; more values than cells are squeezed, each cell the largest of its
            share (a burst survives); fewer are right-aligned (newest on the right).

    Returns:
        The line (``width`` cells), and the peak (``None``: every value unknown).
    """
    if width <= 0:
        return "", None
    total = len(values)
    cells: list[float | None] = []
    if total > width:
        for cell in range(width):
            share = values[cell * total // width : (cell + 1) * total // width]
            heard = [value for value in share if value is not None]
            cells.append(max(heard) if heard else None)
    else:
        cells.extend([None] * (width - total))
        cells.extend(values)
    known = [max(0.0, v) for v in cells if v is not None]
    if not known:
        return " " * width, None
    peak = max(known)
    line = []
    for value in cells:
        if value is None:
            line.append(" ")
        elif value <= 0 or peak <= 0:
            line.append(_SPARK_BARS[0])
        else:
            line.append(_SPARK_BARS[1 + round(value / peak * (len(_SPARK_BARS) - 2))])
    return "".join(line), peak


def plural(number: int, noun: str, plural_form: str | None = None) -> str:
    """``1 worker``, ``3 workers``, ``0 workers``."""
    word = noun if number == 1 else plural_form or noun + "s"
    return f"{number:,} {word}"


def clock_time(at: float) -> str:
    """A Unix time as a UTC wall clock: ``14:03:07Z``."""
    seconds = int(at) % 86_400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def error_message(error: str, job_id: str) -> str:
    """An error as a table shows it: the message first. ``app.gateway.GatewayError:
    card declined`` reads ``GatewayError: card declined``; the job's own id, already in
    its row, shrinks to its short form."""
    kind, colon, message = error.partition(": ")
    if colon and " " not in kind:
        error = f"{kind.rsplit('.', 1)[-1]}: {message}"
    return error.replace(job_id, short_id(job_id)) if job_id else error


def megabytes(value: int | None) -> str:
    """A size in bytes as megabytes: ``44 MB``; ``-`` when unknown."""
    return "-" if value is None else f"{value / 1e6:.0f} MB"


def per_second(value: float) -> str:
    """A rate: ``0.3/s``, ``12/s``, ``1.2k/s``."""
    if value < 10:
        return f"{value:.1f}/s"
    if value < 10_000:
        return f"{value:.0f}/s"
    return f"{value / 1000:.1f}k/s"


def short_id(job_id: str) -> str:
    """The first 8 characters of a job id (enough to tell jobs apart on one screen)."""
    return job_id[:8]


def shorten(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks the cut)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


def tail(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, cut on the left so that its end
    stays (an ellipsis marks the cut): ``app.billing.charge_order`` in 22 reads
    ``…billing.charge_order``, a dot the cut leaves first going too."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    if width <= 1:
        return "…"[:width]
    return "…" + line[len(line) - width + 1 :].removeprefix(".")


def deadline_bar(elapsed: float, limit: float | None, width: int = 10) -> tuple[str, str]:
    """How far a job is into a timeout: a bar and its style.

    Args:
        elapsed: seconds since the job started.
        limit: the timeout in seconds (from start to deadline); ``None``: no timeout.
        width: bar width in cells (the figures follow it).

    Returns:
        ``(text, style)``: e.g. ``("████░░░░░░ 4.0/10s", "green")``; yellow past 75 %,
        bold red past the deadline; ``("-", "dim")`` without a timeout.
    """
    if limit is None or limit <= 0:
        return "-", "dim"
    share = max(0.0, elapsed / limit)
    filled = min(width, round(share * width))
    bar = _BAR_FULL * filled + _BAR_EMPTY * (width - filled)
    style = "bold red" if share >= 1 else "yellow" if share >= 0.75 else "green"
    return f"{bar} {elapsed:.1f}/{limit:g}s", style
