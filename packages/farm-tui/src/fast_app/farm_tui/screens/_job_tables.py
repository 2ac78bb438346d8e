"""The Jobs screen's two tables laid out for their width: pure functions of the view.

Both fit the width they are given rather than scroll sideways: where there is room every
column has its usual width and every name is whole; short of room the columns of figures
shrink to what they show, the function column takes what the others leave (long names
cut on the left, ``…billing.charge_order``: the end of the path stays), and the worker
ids step back to their last part (``…-w3``).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

from fast_app.farm.printable import printable
from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.table import Cell, Column, Row
from fast_app.farm_tui.view import EndedJob, FarmView, RunningJob, WaitingJob

__all__ = [
    "OUTCOME_STYLES",
    "RECENT_COLUMNS",
    "RUNNING_COLUMNS",
    "WAITING_LABEL",
    "is_waiting_key",
    "recent_layout",
    "running_key",
    "running_layout",
    "waiting_key",
]

#: Where the table has room a deadline bar is 10 cells and its figures get 12 (the column
#: holds still as they grow); short of room the bars shrink, down to 4 cells, and the
#: columns to the figures they show.
_WIDE_BAR = 10
_NARROW_BAR = 4
_FIGURES_ROOM = 12
#: The function column takes the width the others leave; when that is under 16 cells (or
#: under its longest name, if shorter) the worker ids give way, cut to their last part.
_FUNCTION_MIN = 16
_NAME_CAP = 48  # the most an auto-sized column takes (table.py)
#: The recent runs' error column takes the width the others leave: 20 cells at least
#: where the names are whole; short of room 12, the start of the message (the selected
#: run's details show it whole).
_ERROR_WIDE_MIN = 20
_ERROR_MIN = 12
_ERROR_MAX = 400
_JOB_COLUMN = Column("Job", "job", 8)
_ATTEMPT_COLUMN = Column("Try", "attempt", 3)
_ELAPSED_COLUMN = Column("Elapsed", "elapsed", 7)
_SOFT_LABEL = "Soft timeout"
_HARD_LABEL = "Hard timeout"
RUNNING_COLUMNS = (
    _JOB_COLUMN,
    Column("Function", "function"),
    Column("Worker", "worker"),
    _ATTEMPT_COLUMN,
    _ELAPSED_COLUMN,
    Column(_SOFT_LABEL, "soft", _WIDE_BAR + _FIGURES_ROOM),
    Column(_HARD_LABEL, "hard", _WIDE_BAR + _FIGURES_ROOM),
)
_ENDED_COLUMN = Column("Ended", "ended", 9)
_OUTCOME_COLUMN = Column("Outcome", "outcome", 13)
_TOOK_COLUMN = Column("Took", "took", 7)
RECENT_COLUMNS = (
    _ENDED_COLUMN,
    _OUTCOME_COLUMN,
    _JOB_COLUMN,
    Column("Function", "function"),
    Column("Worker", "worker"),
    _TOOK_COLUMN,
    Column("Error", "error"),
)
OUTCOME_STYLES = {
    "succeeded": "green",
    "retried": "yellow",
    "dead_lettered": "bold red",
    "cancelled": "magenta",
}


#: What a waiting job's Elapsed cell says: it has not started, so it has no run time.
WAITING_LABEL = "waiting"
#: Ends a waiting job's row key: no job or worker id holds a space.
_WAITING_MARK = " waiting"


def running_key(job: RunningJob) -> str:
    """A running job's row key (a job may run twice at once after a redelivery)."""
    return f"{job.job_id}@{job.worker_id}"


def waiting_key(job: WaitingJob) -> str:
    """A waiting job's row key: never a running job's, even for the same id and worker."""
    return f"{job.job_id}@{job.worker_id}{_WAITING_MARK}"


def is_waiting_key(key: str) -> bool:
    """Whether ``key`` is a waiting job's row key (``waiting_key``)."""
    return key.endswith(_WAITING_MARK)


def _waiting_texts(job: WaitingJob) -> tuple[str, str, str]:
    """A waiting job's id, function (``?``: its delivery names none) and worker, escaped:
    they are shown as a delivery's properties named them."""
    return printable(job.job_id), printable(job.function or "?"), printable(job.worker_id)


def running_layout(view: FarmView, now: float, width: int) -> tuple[tuple[Column, ...], list[Row]]:
    """The Running table's columns and rows (jobs in flight, oldest first, their soft and
    hard timeouts as bars; then the deliveries waiting in workers for a slot, marked
    ``waiting`` in place of a run time, with no attempt or deadline: they have not
    started) for a table ``width`` cells wide.

    Where it has room, 10-cell bars and every name whole. Short of room the bars shrink
    (to 4 cells; their figures stay whole), then the function column takes the width the
    others leave, long names cut on the left (``…billing.charge_order``: the end of the
    path stays); and if that leaves it under 16 cells, the worker ids step back to their
    last part (``…-w3``).
    """
    jobs = view.running
    waiting = [_waiting_texts(job) for job in view.waiting]
    function_width = _widest(
        "Function", [job.function for job in jobs] + [function for _, function, _ in waiting]
    )
    worker_ids = [job.worker_id for job in jobs] + [worker_id for _, _, worker_id in waiting]
    worker_width = _widest("Worker", worker_ids)
    # Each column has a cell of padding either side.
    fixed = (_JOB_COLUMN, _ATTEMPT_COLUMN, _ELAPSED_COLUMN)
    room = width - 2 * len(RUNNING_COLUMNS) - sum(column.width or 0 for column in fixed)
    bar = _WIDE_BAR
    deadline_widths = (_WIDE_BAR + _FIGURES_ROOM, _WIDE_BAR + _FIGURES_ROOM)
    if function_width + worker_width + sum(deadline_widths) > room:
        figures = _figure_widths(jobs, now)
        for bar in range(_WIDE_BAR, _NARROW_BAR - 1, -1):
            deadline_widths = _deadline_widths(figures, bar)
            if function_width + worker_width + sum(deadline_widths) <= room:
                break
    names_room = room - sum(deadline_widths)
    function_width, worker_width = _fit_names(names_room, function_width, worker_width, worker_ids)
    columns = (
        _JOB_COLUMN,
        Column("Function", "function", function_width),
        Column("Worker", "worker", worker_width),
        _ATTEMPT_COLUMN,
        _ELAPSED_COLUMN,
        Column(_SOFT_LABEL, "soft", deadline_widths[0]),
        Column(_HARD_LABEL, "hard", deadline_widths[1]),
    )
    rows = [_running_row(job, now, bar, function_width, worker_width) for job in jobs]
    rows += [
        _waiting_row(job, texts, function_width, worker_width)
        for job, texts in zip(view.waiting, waiting, strict=True)
    ]
    return columns, rows


def recent_layout(view: FarmView, now: float, width: int) -> tuple[tuple[Column, ...], list[Row]]:
    """The Recent table's columns and rows (ended runs, latest first, each error by its
    message) for a table ``width`` cells wide.

    Where it has room, every column its usual width, every name whole, and the error
    column the width the others leave (20 cells at least). Short of room the ended, outcome
    and took columns shrink to what they show, then the function and error columns share
    the width the others leave: the error 12 cells at least, the function names cut on the
    left (``…billing.charge``); and if that leaves the function under 16 cells, the worker
    ids step back to their last part (``…-w3``).
    """
    jobs = view.recent
    ended = [fmt.age(now - job.ended_at) + " ago" for job in jobs]
    took = [fmt.seconds(job.duration_s) for job in jobs]
    function_width = _widest("Function", [job.function for job in jobs])
    worker_width = _widest("Worker", [job.worker_id for job in jobs])
    ended_width, outcome_width, took_width = (
        _ENDED_COLUMN.width or 0,
        _OUTCOME_COLUMN.width or 0,
        _TOOK_COLUMN.width or 0,
    )
    # Each column has a cell of padding either side; the job ids are 8 cells whatever.
    others = 2 * len(RECENT_COLUMNS) + (_JOB_COLUMN.width or 0)
    room = width - others - ended_width - outcome_width - took_width
    if function_width + worker_width + _ERROR_WIDE_MIN > room:
        ended_width = min(ended_width, _widest("Ended", ended))
        outcome_width = min(outcome_width, _widest("Outcome", [job.outcome for job in jobs]))
        took_width = min(took_width, _widest("Took", took))
        room = width - others - ended_width - outcome_width - took_width
        function_width, worker_width = _fit_names(
            room - _ERROR_MIN, function_width, worker_width, [job.worker_id for job in jobs]
        )
    error_width = max(_ERROR_MIN, min(_ERROR_MAX, room - function_width - worker_width))
    columns = (
        Column("Ended", "ended", ended_width),
        Column("Outcome", "outcome", outcome_width),
        _JOB_COLUMN,
        Column("Function", "function", function_width),
        Column("Worker", "worker", worker_width),
        Column("Took", "took", took_width),
        Column("Error", "error", error_width),
    )
    rows = [
        _recent_row(job, ended_text, took_text, (function_width, worker_width, error_width))
        for job, ended_text, took_text in zip(jobs, ended, took, strict=True)
    ]
    return columns, rows


def _fit_names(
    names_room: int, function_width: int, worker_width: int, worker_ids: Sequence[str]
) -> tuple[int, int]:
    """The function and worker columns' widths in ``names_room`` cells: as they are if they
    fit; else the function takes what the workers leave, the workers cut to their last
    part first if that would be under 16 cells (or the longest name)."""
    if function_width + worker_width <= names_room:
        return function_width, worker_width
    if names_room - worker_width < min(function_width, _FUNCTION_MIN):
        worker_width = _widest("Worker", [_last_part(worker_id) for worker_id in worker_ids])
    return max(len("Function"), min(function_width, names_room - worker_width)), worker_width


def _recent_row(job: EndedJob, ended: str, took: str, widths: tuple[int, int, int]) -> Row:
    function_width, worker_width, error_width = widths
    error = fmt.error_message(job.error or "", job.job_id)
    cells: tuple[Cell, ...] = (
        (ended, "dim"),
        (job.outcome, OUTCOME_STYLES.get(job.outcome, "")),
        (fmt.short_id(job.job_id), ""),
        (fmt.tail(job.function, function_width), ""),
        (_worker(job.worker_id, worker_width), ""),
        (took, ""),
        (fmt.shorten(error, error_width), "red" if job.error else ""),
    )
    return job.key, cells


def _running_row(
    job: RunningJob, now: float, bar: int, function_width: int, worker_width: int
) -> Row:
    elapsed = max(0.0, now - job.started_at)
    soft, hard = _timeouts(job)
    cells: tuple[Cell, ...] = (
        (fmt.short_id(job.job_id), ""),
        (fmt.tail(job.function, function_width), "bold red" if job.still_running else ""),
        (_worker(job.worker_id, worker_width), ""),
        (str(job.attempt), ""),
        (fmt.age(elapsed), ""),
        fmt.deadline_bar(elapsed, soft, bar),
        fmt.deadline_bar(elapsed, hard, bar),
    )
    return running_key(job), cells


def _waiting_row(
    job: WaitingJob, texts: tuple[str, str, str], function_width: int, worker_width: int
) -> Row:
    job_id, function, worker_id = texts
    cells: tuple[Cell, ...] = (
        (fmt.short_id(job_id), ""),
        (fmt.tail(function, function_width), ""),
        (_worker(worker_id, worker_width), ""),
        ("-", "dim"),  # its attempt is in its body, decoded when it starts
        (WAITING_LABEL, "yellow"),
        ("", ""),
        ("", ""),
    )
    return waiting_key(job), cells


def _timeouts(job: RunningJob) -> tuple[float | None, float | None]:
    """A job's soft and hard timeouts, in seconds from its start."""
    soft = None if job.soft_deadline is None else job.soft_deadline - job.started_at
    hard = None if job.hard_deadline is None else job.hard_deadline - job.started_at
    return soft, hard


def _figure_widths(jobs: Sequence[RunningJob], now: float) -> tuple[int, int]:
    """The widest figures (`` 7.5/10s``, the space before them included) of the soft and
    the hard deadline bars; 0 for one no job has."""
    soft_width = hard_width = 0
    for job in jobs:
        elapsed = max(0.0, now - job.started_at)
        soft, hard = _timeouts(job)
        if soft is not None:
            soft_width = max(soft_width, len(fmt.deadline_bar(elapsed, soft, 0)[0]))
        if hard is not None:
            hard_width = max(hard_width, len(fmt.deadline_bar(elapsed, hard, 0)[0]))
    return soft_width, hard_width


def _deadline_widths(figures: tuple[int, int], bar: int) -> tuple[int, int]:
    """The soft and hard timeout columns' widths with ``bar``-cell bars: their label's, or
    their widest cell's if wider."""
    soft, hard = figures
    return (
        max(len(_SOFT_LABEL), bar + soft if soft else 1),
        max(len(_HARD_LABEL), bar + hard if hard else 1),
    )


def _widest(label: str, texts: Sequence[str]) -> int:
    """An auto-sized column's width: its widest text or its label, 48 at most."""
    return min(_NAME_CAP, max([cell_len(label), *(cell_len(text) for text in texts)]))


def _worker(worker_id: str, width: int) -> str:
    """A worker id as its column shows it: whole if it fits, else its last part."""
    return worker_id if cell_len(worker_id) <= width else _last_part(worker_id)


def _last_part(worker_id: str) -> str:
    """A worker id cut to its last part: ``web-1-4242-w3`` reads ``…-w3``."""
    dash = worker_id.rfind("-")
    return "…" + worker_id[dash:] if dash > 0 else worker_id
