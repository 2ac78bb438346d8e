"""Jobs: running ones against their deadlines, then the deliveries waiting inside workers
for a slot, recent ends, and the selected job's details.

``c`` cancels the selected running or waiting job, after confirming: its supervisor tells
its worker to cancel the job's task, or to settle a waiting delivery without running it,
and the job is dead-lettered with reason ``cancelled`` (never redelivered nor retried;
requeue it from the dead letters to run it again). A plain function runs in a thread,
which cannot be stopped: refused at once when it runs (a waiting one has not started).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from fast_app.farm.printable import printable
from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.screens._job_tables import (
    OUTCOME_STYLES,
    RECENT_COLUMNS,
    RUNNING_COLUMNS,
    is_waiting_key,
    recent_layout,
    running_key,
    running_layout,
    waiting_key,
)
from fast_app.farm_tui.screens.confirm import ConfirmScreen
from fast_app.farm_tui.table import LiveTable
from fast_app.farm_tui.view import EndedJob, FarmView, RunningJob, WaitingJob

__all__ = [
    "JobsScreen",
    "ended_details",
    "recent_layout",
    "running_details",
    "running_layout",
    "running_title",
    "waiting_details",
]

_TRACEBACK_LINES = 40
#: Under 32 lines the Jobs screen is ``-short``: the running jobs take the room they need
#: first (up to half the height), the recent runs and the selected job share the rest.
_HEIGHT_BREAKPOINTS = [(0, "-short"), (32, "-tall")]


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


def waiting_details(job: WaitingJob) -> Text:
    """What is known of a delivery waiting in its worker for a slot: not started, so no
    run time, and no attempt, arguments or deadline until its body is decoded."""
    text = Text()
    text.append("job ", "dim").append(printable(job.job_id), "bold")
    text.append("  ").append(printable(job.function or "?"), "bold cyan")
    text.append(f"  on {printable(job.worker_id)}\n", "dim")
    text.append("waiting", "bold yellow")
    text.append(" for a free slot in its worker: not started (FARM_PREFETCH above ")
    text.append("FARM_CONCURRENCY); its attempt, arguments and deadlines are known once it ")
    text.append("starts")
    if job.function is None:
        text.append("\nits delivery names no function", "dim")
    return text


def running_title(view: FarmView) -> str:
    """The Running table's title: the jobs in flight, and the deliveries waiting in
    workers for a slot when any wait (how many of each the snapshots list, if not all)."""
    title = f"Running: {view.running_total}"
    if len(view.running) < view.running_total:
        title += f" ({len(view.running)} oldest listed)"
    if view.waiting_total:
        title += f" · waiting for a slot: {view.waiting_total:,}"
        if len(view.waiting) < view.waiting_total:
            title += f" ({len(view.waiting)} listed)"
    return title


def ended_details(job: EndedJob, now: float) -> Text:
    """Everything known of an ended run: arguments, context keys, error, traceback."""
    text = _header(job.job_id, job.function, job.attempt, job.worker_id)
    text.append(job.outcome, OUTCOME_STYLES.get(job.outcome, "bold"))
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
        Binding("c", "cancel_job", "Cancel job", tooltip="the selected job, running or waiting"),
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
        yield LiveTable(RUNNING_COLUMNS, id="running")
        yield LiveTable(RECENT_COLUMNS, id="recent")
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

    def on_live_table_resized(self) -> None:
        """Lay the tables out again when one's size changed without the screen's: the
        columns depend on its height too (whether its rows need a scrollbar), and the
        first layout may run before the heights settle."""
        self.call_after_refresh(self.dashboard.refresh_screen)

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Tables and the selected job's details."""
        super().refresh_view(view, now)
        for table, layout in (
            (self._running_table, running_layout),
            (self._recent_table, recent_layout),
        ):
            columns, rows = layout(view, now, self._width_of(table))
            if len(rows) >= table.content_region.height > 0:
                # Its rows (and header) outnumber its lines: a scrollbar takes a side.
                columns, rows = layout(view, now, self._width_of(table, scrolled=True))
            table.set_columns(columns)
            table.update(rows)
        self.query_one("#running").border_title = running_title(view)
        self._last = (view, now)
        self._follow_cursor()
        self._show_details()

    def _width_of(self, table: LiveTable, *, scrolled: bool = False) -> int:
        """The cells a table's columns have: decided from its size and rows alone, not
        from whether a scrollbar shows at this moment (which lags the layout, and made the
        columns 2 cells narrower on a busy host)."""
        width = table.content_region.width or self.app.size.width - 2
        return width - (table.styles.scrollbar_size_vertical if scrolled else 0)

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
        if table == "running" and is_waiting_key(key):
            waiting = next((job for job in view.waiting if waiting_key(job) == key), None)
            if waiting is None:
                gone = "\n(no longer waiting: it started, was cancelled or went back to the queue)"
                return Text.assemble(self._shown_detail, (gone, "dim"))
            self._shown_detail = waiting_details(waiting)
        elif table == "running":
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

    def selected_waiting_job(self) -> WaitingJob | None:
        """The waiting job under the cursor of the Running table, if any."""
        if self._last is None or self._selected is None or self._selected[0] != "running":
            return None
        key = self._selected[1]
        return next((job for job in self._last[0].waiting if waiting_key(job) == key), None)

    def action_cancel_job(self) -> None:
        """Cancel the selected running or waiting job, once confirmed."""
        waiting = self.selected_waiting_job()
        if waiting is not None:
            self._cancel_waiting(waiting)
            return
        job = self.selected_running_job()
        if job is None:
            self.notify("select a running or waiting job to cancel", severity="warning")
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

    def _cancel_waiting(self, job: WaitingJob) -> None:
        """Cancel a delivery waiting in its worker for a slot, once confirmed: the same
        command as for a running job (its supervisor finds which one it is)."""
        job_id, function = printable(job.job_id), printable(job.function or "?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.dashboard.send(
                    job.supervisor_id,
                    {"command": "cancel_job", "job_id": job.job_id},
                    f"{job.supervisor_id}: cancel waiting job {fmt.short_id(job_id)}",
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel job {job_id} ({function}), waiting for a slot on "
                f"{printable(job.worker_id)}? It is dead-lettered with reason 'cancelled' "
                "without running (if it started meanwhile, it is cancelled as it runs), and "
                "not run again unless requeued."
            ),
            answered,
        )
