"""Jobs: running ones against their deadlines, recent ends, and the selected job's details.

``c`` cancels the selected running job, after confirming: its supervisor tells its worker
to cancel the job's task, and the job is dead-lettered with reason ``cancelled`` (never
redelivered nor retried; requeue it from the dead letters to run it again). A plain
function runs in a thread, which cannot be stopped: refused at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.screens.confirm import ConfirmScreen
from fast_app.farm_tui.table import Cell, Column, LiveTable, Row, column_widths
from fast_app.farm_tui.view import EndedJob, FarmView, RunningJob

__all__ = ["JobsScreen", "ended_details", "recent_rows", "running_details", "running_layout"]

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
_JOB_COLUMN = Column("Job", "job", 8)
_ATTEMPT_COLUMN = Column("Try", "attempt", 3)
_ELAPSED_COLUMN = Column("Elapsed", "elapsed", 7)
_SOFT_LABEL = "Soft timeout"
_HARD_LABEL = "Hard timeout"
_RUNNING_COLUMNS = (
    _JOB_COLUMN,
    Column("Function", "function"),
    Column("Worker", "worker"),
    _ATTEMPT_COLUMN,
    _ELAPSED_COLUMN,
    Column(_SOFT_LABEL, "soft", _WIDE_BAR + _FIGURES_ROOM),
    Column(_HARD_LABEL, "hard", _WIDE_BAR + _FIGURES_ROOM),
)
_RECENT_COLUMNS = (
    Column("Ended", "ended", 9),
    Column("Outcome", "outcome", 13),
    Column("Job", "job", 8),
    Column("Function", "function"),
    Column("Worker", "worker"),
    Column("Took", "took", 7),
    Column("Error", "error"),
)
_ERROR_WIDTHS = (20, 400)  # the error column takes the width the others leave
_OUTCOME_STYLES = {
    "succeeded": "green",
    "retried": "yellow",
    "dead_lettered": "bold red",
    "cancelled": "magenta",
}
_TRACEBACK_LINES = 40
#: Under 32 lines the Jobs screen is ``-short``: the running jobs take the room they need
#: first (up to half the height), the recent runs and the selected job share the rest.
_HEIGHT_BREAKPOINTS = [(0, "-short"), (32, "-tall")]


def running_key(job: RunningJob) -> str:
    """A running job's row key (a job may run twice at once after a redelivery)."""
    return f"{job.job_id}@{job.worker_id}"


def running_layout(view: FarmView, now: float, width: int) -> tuple[tuple[Column, ...], list[Row]]:
    """The Running table's columns and rows (jobs in flight, oldest first, their soft and
    hard timeouts as bars) for a table ``width`` cells wide.

    Where it has room, 10-cell bars and every name whole. Short of room the bars shrink
    (to 4 cells; their figures stay whole), then the function column takes the width the
    others leave, long names cut on the left (``…billing.charge_order``: the end of the
    path stays); and if that leaves it under 16 cells, the worker ids step back to their
    last part (``…-w3``).
    """
    jobs = view.running
    function_width = _widest("Function", [job.function for job in jobs])
    worker_width = _widest("Worker", [job.worker_id for job in jobs])
    # Each column has a cell of padding either side.
    fixed = (_JOB_COLUMN, _ATTEMPT_COLUMN, _ELAPSED_COLUMN)
    room = width - 2 * len(_RUNNING_COLUMNS) - sum(column.width or 0 for column in fixed)
    bar = _WIDE_BAR
    deadline_widths = (_WIDE_BAR + _FIGURES_ROOM, _WIDE_BAR + _FIGURES_ROOM)
    if function_width + worker_width + sum(deadline_widths) > room:
        figures = _figure_widths(jobs, now)
        for bar in range(_WIDE_BAR, _NARROW_BAR - 1, -1):
            deadline_widths = _deadline_widths(figures, bar)
            if function_width + worker_width + sum(deadline_widths) <= room:
                break
    names_room = room - sum(deadline_widths)
    if function_width + worker_width > names_room:
        if names_room - worker_width < min(function_width, _FUNCTION_MIN):
            worker_width = _widest("Worker", [_last_part(job.worker_id) for job in jobs])
        function_width = max(len("Function"), min(function_width, names_room - worker_width))
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
    return columns, rows


def _running_row(
    job: RunningJob, now: float, bar: int, function_width: int, worker_width: int
) -> Row:
    elapsed = max(0.0, now - job.started_at)
    soft, hard = _timeouts(job)
    worker = job.worker_id
    if cell_len(worker) > worker_width:
        worker = _last_part(worker)
    cells: tuple[Cell, ...] = (
        (fmt.short_id(job.job_id), ""),
        (fmt.tail(job.function, function_width), "bold red" if job.still_running else ""),
        (worker, ""),
        (str(job.attempt), ""),
        (fmt.age(elapsed), ""),
        fmt.deadline_bar(elapsed, soft, bar),
        fmt.deadline_bar(elapsed, hard, bar),
    )
    return running_key(job), cells


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


def _last_part(worker_id: str) -> str:
    """A worker id cut to its last part: ``web-1-4242-w3`` reads ``…-w3``."""
    dash = worker_id.rfind("-")
    return "…" + worker_id[dash:] if dash > 0 else worker_id


def recent_columns(width: int, rows: Sequence[Row] = ()) -> tuple[Column, ...]:
    """The recent table's columns for a table ``width`` cells wide showing ``rows``:
    the error column takes what the others leave."""
    others = sum(width + 2 for width in column_widths(_RECENT_COLUMNS[:-1], rows))
    error_width = max(_ERROR_WIDTHS[0], min(_ERROR_WIDTHS[1], width - others - 2))
    return (*_RECENT_COLUMNS[:-1], Column("Error", "error", error_width))


def recent_rows(view: FarmView, now: float, error_width: int = 60) -> list[Row]:
    """Ended runs, latest first; each error by its message, ``error_width`` at most."""
    rows = []
    for job in view.recent:
        error = fmt.error_message(job.error or "", job.job_id)
        cells: tuple[Cell, ...] = (
            (fmt.age(now - job.ended_at) + " ago", "dim"),
            (job.outcome, _OUTCOME_STYLES.get(job.outcome, "")),
            (fmt.short_id(job.job_id), ""),
            (job.function, ""),
            (job.worker_id, ""),
            (fmt.seconds(job.duration_s), ""),
            (fmt.shorten(error, error_width), "red" if job.error else ""),
        )
        rows.append((job.key, cells))
    return rows


def running_details(job: RunningJob, now: float) -> Text:
    """Everything known of a running job."""
    elapsed = max(0.0, now - job.started_at)
    text = _header(job.job_id, job.function, job.attempt, job.worker_id)
    text.append(f"running for {fmt.age(elapsed)}", "bold")
    for label, deadline in (("soft", job.soft_deadline), ("hard", job.hard_deadline)):
        if deadline is not None:
            left = deadline - now
            when = f"in {fmt.age(left)}" if left >= 0 else f"{fmt.age(-left)} ago"
            text.append(f"   {label} deadline {when}", "red" if left < 0 else "")
    if job.still_running:
        text.append("\npast its soft timeout and could not be stopped", "bold red")
    _append_arguments(text, job.args, job.context_keys)
    return text


def ended_details(job: EndedJob, now: float) -> Text:
    """Everything known of an ended run: arguments, context keys, error, traceback."""
    text = _header(job.job_id, job.function, job.attempt, job.worker_id)
    text.append(job.outcome, _OUTCOME_STYLES.get(job.outcome, "bold"))
    text.append(f" {fmt.age(now - job.ended_at)} ago after {fmt.seconds(job.duration_s)}")
    _append_arguments(text, job.args, job.context_keys)
    if job.error:
        text.append("\nerror      ", "dim").append(job.error, "red")
    if job.traceback:
        lines = job.traceback.rstrip().splitlines()[-_TRACEBACK_LINES:]
        text.append("\ntraceback  (its end)\n", "dim").append("\n".join(lines))
    return text


def _header(job_id: str, function: str, attempt: int, worker_id: str) -> Text:
    text = Text()
    text.append("job ", "dim").append(job_id, "bold")
    text.append("  ").append(function, "bold cyan")
    text.append(f"  attempt {attempt}  on {worker_id}\n", "dim")
    return text


def _append_arguments(text: Text, args: str, context_keys: tuple[str, ...]) -> None:
    text.append("\narguments  ", "dim").append(args or "-")
    text.append("\ncontext    ", "dim").append(", ".join(context_keys) or "(empty)")


class JobsScreen(DashboardScreen):
    """Running jobs with deadline bars, recent successes and failures, and details.

    On a terminal under 32 lines the Running table is as tall as its rows (up to half
    the screen, then it scrolls), and the others share what it leaves: splitting the
    height evenly left it a single row at 80 by 24.
    """

    VERTICAL_BREAKPOINTS = _HEIGHT_BREAKPOINTS

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_job", "Cancel job", tooltip="the running job under the cursor"),
    ]

    DEFAULT_CSS = """
    JobsScreen #running { height: 1fr; border: round $primary; }
    JobsScreen #recent { height: 1fr; border: round $primary; }
    JobsScreen #detail-box { height: 12; border: round $primary; padding: 0 1; }
    JobsScreen.-short #running { height: auto; max-height: 50%; }
    JobsScreen.-short #detail-box { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        """Running, recent, details."""
        yield StatusBar(id="status")
        yield LiveTable(_RUNNING_COLUMNS, id="running")
        yield LiveTable(_RECENT_COLUMNS, id="recent")
        with VerticalScroll(id="detail-box"):
            yield Static(id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns and titles."""
        self._running_table = self.query_one("#running", LiveTable)
        self._recent_table = self.query_one("#recent", LiveTable)
        self.query_one("#running").border_title = "Running"
        self.query_one("#recent").border_title = "Recent (failures kept longest)"
        self.query_one("#detail-box").border_title = "Selected job"
        self._selected: tuple[str, str] | None = None
        self._shown_detail = Text("select a job (tab switches tables)", style="dim")
        self._last: tuple[FarmView, float] | None = None
        self._running_table.focus()

    def on_resize(self) -> None:
        """Lay the tables out again once the screen is laid out anew: their columns fit
        their width."""
        self.call_after_refresh(self.dashboard.refresh_screen)

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Tables and the selected job's details."""
        super().refresh_view(view, now)
        width = self._running_table.scrollable_content_region.width or self.app.size.width - 2
        columns, rows = running_layout(view, now, width)
        self._running_table.set_columns(columns)
        self._running_table.update(rows)
        width = self._recent_table.size.width or self.app.size.width - 2
        columns = recent_columns(width, recent_rows(view, now))
        self._recent_table.set_columns(columns)
        self._recent_table.update(recent_rows(view, now, columns[-1].width or 60))
        listed = len(view.running)
        title = f"Running: {view.running_total}"
        if listed < view.running_total:
            title += f" ({listed} oldest listed)"
        self.query_one("#running").border_title = title
        self._last = (view, now)
        self._follow_cursor()
        self._show_details()

    def _show_details(self) -> None:
        if self._last is not None and self.is_attached:
            self.query_one("#detail", Static).update(self._details(*self._last))

    def _follow_cursor(self) -> None:
        focused = self.focused
        if isinstance(focused, LiveTable) and focused.id in ("running", "recent"):
            key = focused.selected_key
            if key is not None:
                self._selected = (focused.id, key)

    def _details(self, view: FarmView, now: float) -> Text:
        if self._selected is None:
            return self._shown_detail
        table, key = self._selected
        if table == "running":
            running = next((job for job in view.running if running_key(job) == key), None)
            if running is None:
                return Text.assemble(self._shown_detail, ("\n(no longer running)", "dim"))
            self._shown_detail = running_details(running, now)
        else:
            ended = next((job for job in view.recent if job.key == key), None)
            if ended is None:
                return self._shown_detail
            self._shown_detail = ended_details(ended, now)
        return self._shown_detail

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        """The cursor moved: show that job."""
        if event.table.has_focus and event.key is not None:
            self._selected = (event.table.id or "", event.key)
            self._show_details()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """The other table got the focus: show its job."""
        self._follow_cursor()
        self._show_details()

    def selected_running_job(self) -> RunningJob | None:
        """The running job under the cursor of the Running table, if any."""
        if self._last is None or self._selected is None or self._selected[0] != "running":
            return None
        key = self._selected[1]
        return next((job for job in self._last[0].running if running_key(job) == key), None)

    def action_cancel_job(self) -> None:
        """Cancel the selected running job, once confirmed."""
        job = self.selected_running_job()
        if job is None:
            self.notify("select a running job to cancel", severity="warning")
            return
        if job.in_thread:
            self.notify(
                f"cannot cancel job {fmt.short_id(job.job_id)}: it runs in a thread, and "
                "threads cannot be stopped",
                severity="error",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dashboard.send(
                    job.supervisor_id,
                    {"command": "cancel_job", "job_id": job.job_id},
                    f"{job.supervisor_id}: cancel job {fmt.short_id(job.job_id)}",
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel job {job.job_id} ({job.function}) on {job.worker_id}? It is "
                "dead-lettered with reason 'cancelled' and not run again unless requeued."
            ),
            answered,
        )
