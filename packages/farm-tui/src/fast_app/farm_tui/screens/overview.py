"""The overview: supervisors, the farm's rates, a row per queue, workers, scaling, lifecycle
events."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, RichLog, Static

from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.table import Cell, Column, LiveTable, Row, column_widths
from fast_app.farm_tui.view import (
    FarmEvent,
    FarmView,
    NamedQueueView,
    QueueView,
    SupervisorView,
    WorkerView,
)

__all__ = ["OverviewScreen"]

_SUPERVISOR_COLUMNS = (
    Column("Supervisor", "supervisor"),
    Column("Host", "host"),
    Column("Up", "up", 6),
    Column("Min", "min", 4),
    Column("Max", "max", 4),
    Column("Want", "desired", 4),
    Column("Has", "workers", 4),
    Column("State", "state", 9),
    Column("Seen", "seen", 9),
)
#: Under 100 columns the supervisors pane is about 36 cells wide: what says whether a
#: supervisor is alive and has its workers comes first, the rest scrolls to the right.
_NARROW_SUPERVISOR_COLUMNS = (
    Column("Supervisor", "supervisor"),
    Column("State", "state", 8),
    Column("Has", "workers"),
    Column("Seen", "seen"),
    Column("Min..max", "limits"),
    Column("Host", "host"),
    Column("Up", "up", 6),
)
_NARROW_SUPERVISORS_BELOW = 100
_QUEUE_COLUMNS = (
    Column("Queue", "queue"),
    Column("Workers", "pool"),
    Column("Ready", "ready"),
    Column("Unacked", "unacked"),
    Column("Delayed", "delayed"),
    Column("Dead", "dead"),
    Column("Wait p50/max", "wait"),
    Column("Clear", "clear"),
    Column("Backlog, 2 min (peak)", "backlog"),
)
#: On a terminal under 100 columns (a table under 98): shorter labels, so that the
#: sparkline and its peak fit in 80.
_NARROW_QUEUE_COLUMNS = (
    Column("Queue", "queue"),
    Column("Workers", "pool"),
    Column("Ready", "ready"),
    Column("Unack", "unacked"),
    Column("Delay", "delayed"),
    Column("Dead", "dead"),
    Column("Wait", "wait"),
    Column("Clear", "clear"),
    Column("Backlog", "backlog"),
)
_NARROW_BELOW = 98
#: Under 32 lines the overview is ``-short``: the decisions and events panes step aside.
_HEIGHT_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
#: From 160 columns the rates pane shares the top row with the supervisors.
#: Under 100 the queue pane narrows to leave the supervisors' first columns room.
_WIDTH_BREAKPOINTS = [(0, "-small"), (_NARROW_SUPERVISORS_BELOW, "-narrow"), (160, "-wide")]
#: The backlog sparkline's fewest and most cells: at most one a second of its 2 minutes.
_BACKLOG_WIDTHS = (8, 120)
_QUEUE_ROWS_SHOWN = 7  # the queues pane's max-height, less its borders and header
_WORKER_COLUMNS = (
    Column("Worker", "worker"),
    Column("Queue", "queue"),
    Column("PID", "pid", 7),
    Column("State", "state", 8),
    Column("Jobs", "jobs", 4),
    Column("Waiting", "waiting", 7),
    Column("OK", "ok", 7),
    Column("Failed", "failed", 6),
    Column("Failed tries", "failed_attempts", 12),
    Column("RSS", "rss", 7),
    Column("Up", "up", 6),
    Column("Heartbeat", "heartbeat"),
)
_STATE_STYLES = {
    "busy": "green",
    "idle": "",
    "starting": "cyan",
    "paused": "yellow",
    "draining": "magenta",
}
_LEVEL_STYLES = {"warning": "yellow", "error": "bold red", "critical": "bold red"}


def supervisor_layout(view: FarmView, width: int) -> tuple[tuple[Column, ...], list[Row]]:
    """The supervisors table's columns and rows on a terminal ``width`` cells wide."""
    if width < _NARROW_SUPERVISORS_BELOW:
        return _NARROW_SUPERVISOR_COLUMNS, supervisor_rows(view, narrow=True)
    return _SUPERVISOR_COLUMNS, supervisor_rows(view)


def supervisor_rows(view: FarmView, *, narrow: bool = False) -> list[Row]:
    """The supervisors table (``narrow``: in ``_NARROW_SUPERVISOR_COLUMNS``)."""
    rows: list[Row] = []
    for supervisor in view.supervisors:
        stale = "bold red" if supervisor.stale else ""
        limits_style = "italic" if supervisor.limits_pending else ""
        cells: tuple[Cell, ...]
        if narrow:
            cells = (
                (supervisor.supervisor_id, stale),
                _supervisor_state(supervisor),
                (f"{supervisor.workers}/{supervisor.desired_workers}", ""),
                (fmt.coarse_age(supervisor.snapshot_age_s), stale),
                (f"{supervisor.min_workers}..{supervisor.max_workers}", limits_style),
                (supervisor.host, ""),
                (fmt.age(supervisor.uptime_s), ""),
            )
            rows.append((supervisor.supervisor_id, cells))
            continue
        cells = (
            (supervisor.supervisor_id, stale),
            (supervisor.host, ""),
            (fmt.age(supervisor.uptime_s), ""),
            (str(supervisor.min_workers), limits_style),
            (str(supervisor.max_workers), limits_style),
            (str(supervisor.desired_workers), ""),
            (str(supervisor.workers), ""),
            _supervisor_state(supervisor),
            (fmt.coarse_age(supervisor.snapshot_age_s) + " ago", stale),
        )
        rows.append((supervisor.supervisor_id, cells))
    return rows


def _supervisor_state(supervisor: SupervisorView) -> Cell:
    # Its last snapshot said running; its silence since says it may not be (killed, or
    # cut off): never shown running on old news.
    if supervisor.stale:
        return "silent", "bold red"
    if supervisor.stopping:
        return "stopping", "bold magenta"
    if supervisor.paused:
        return "paused", "yellow"
    return "running", "green"


def worker_rows(view: FarmView) -> list[Row]:
    """The workers table; a worker with a stale heartbeat is red from end to end."""
    return [_worker_row(worker, stale) for worker, stale in view.workers]


def _worker_row(worker: WorkerView, stale: bool) -> Row:
    """A worker: red from end to end when its own heartbeats stopped (``LATE``); grey,
    its heartbeat unknown, when its supervisor's snapshot is what is old.

    *Jobs* counts its jobs in flight; *Waiting* the deliveries it holds until a slot
    frees (``FARM_PREFETCH`` above ``FARM_CONCURRENCY``: not started, not among its
    jobs; ``-`` when its snapshot does not say). *Failed* counts the jobs that failed for
    good (dead-lettered); *Failed tries* the attempts that failed, retried ones included.
    """
    alarm = "bold red" if stale else "dim" if worker.data_stale else ""
    failed_style = alarm or ("red" if worker.dead_lettered else "")
    if worker.data_stale:
        heartbeat = f"{fmt.coarse_age(worker.heartbeat_age_s)} LATE" if stale else "?"
        heartbeat += f", data {fmt.coarse_age(worker.data_age_s)} old"
    else:
        heartbeat = fmt.coarse_age(worker.heartbeat_age_s) + (" LATE" if stale else "")
    cells: tuple[Cell, ...] = (
        (worker.worker_id, alarm),
        (worker.queue, alarm),
        ("-" if worker.pid is None else str(worker.pid), alarm),
        ("?" if worker.data_stale else worker.state, alarm or _STATE_STYLES.get(worker.state, "")),
        (str(worker.in_flight), alarm),
        (fmt.figure(worker.waiting), alarm),
        (str(worker.succeeded), alarm),
        (str(worker.dead_lettered), failed_style),
        (str(worker.failed), alarm or ("yellow" if worker.failed else "")),
        (fmt.megabytes(worker.rss_bytes), alarm),
        (fmt.age(worker.uptime_s), alarm),
        (heartbeat, alarm),
    )
    return worker.worker_id, cells


def queue_text(view: FarmView, now: float | None = None) -> Text:
    """Depths of the jobs queue (of every queue together), on two lines; greyed, with
    their age, when the data is stale."""
    queue = view.queue
    figure = fmt.figure
    stale = view.data_stale
    bold = "dim" if stale else "bold"
    text = Text()
    text.append("ready ", "dim").append(figure(queue.ready), bold)
    text.append("  unacked ", "dim").append(figure(queue.unacked), bold)
    if stale and view.data_at is not None and now is not None:
        text.append(f"  ({fmt.coarse_age(now - view.data_at)} old)", "bold red")
    text.append("\ndelayed ", "dim").append(_delayed(queue), bold)
    dead_style = bold if stale or not queue.dead else "bold red"
    text.append("  dead ", "dim").append(figure(queue.dead), dead_style)
    text.append("  consumers ", "dim").append(figure(queue.consumers), bold)
    return text


def rate_lines(
    verb: str,
    rate: float | None,
    history: tuple[float | None, ...],
    width: int,
    view: FarmView,
    now: float,
) -> tuple[Text, Text]:
    """A rate's label (its value, or unknown with the data's age, and the peak of its
    history) and its sparkline ``width`` cells wide (blank where there was no data)."""
    line, peak = fmt.sparkline(history, width)
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(f"{verb} ", "dim")
    if rate is None:
        if view.data_at is None:
            age = ": no supervisor" if not view.supervisors else ""
        else:
            age = f": data {fmt.coarse_age(now - view.data_at)} old"
        label.append(f"unknown{age}", "bold red")
    else:
        label.append(fmt.per_second(rate), "bold")
    if peak is not None:
        label.append(f"  2 min peak {fmt.per_second(peak)}", "dim")
    return label, Text(line, "dim" if view.data_stale else "cyan")


def queue_columns(width: int) -> tuple[Column, ...]:
    """The queues table's columns for a table ``width`` cells wide."""
    return _NARROW_QUEUE_COLUMNS if width < _NARROW_BELOW else _QUEUE_COLUMNS


def queue_rows(view: FarmView, width: int) -> list[Row]:
    """The queues table, ``width`` cells wide: its backlog sparklines take what the
    other columns leave (within 8 to 40 cells).

    Unknown figures read ``-``; a queue whose broker figures are older than 3 heartbeat
    intervals is red from end to end, with their age.
    """
    narrow = width < _NARROW_BELOW  # the delayed counts without their bound
    rows = [(queue.name, _queue_cells(queue, narrow=narrow)) for queue in view.queues]
    columns = queue_columns(width)
    used = sum(column + 2 for column in column_widths(columns[:-1], rows))
    # Every peak fits the widest label a count takes (``1.8k``, ``300``).
    room = width - used - 2 - len(" 999k")
    bars = max(_BACKLOG_WIDTHS[0], min(_BACKLOG_WIDTHS[1], room))
    return [
        (key, (*cells, _backlog_cell(queue, bars)))
        for (key, cells), queue in zip(rows, view.queues, strict=True)
    ]


def queue_layout(view: FarmView, width: int) -> tuple[tuple[Column, ...], list[Row]]:
    """The queues table's columns and rows, ``width`` cells wide: the backlog column as
    wide as its sparkline and peak (past the 48 cells a column takes by itself)."""
    rows = queue_rows(view, width)
    columns = queue_columns(width)
    backlog = max((len(row[1][-1][0]) for row in rows), default=len(columns[-1].label))
    last = columns[-1]
    return (*columns[:-1], Column(last.label, last.key, max(backlog, len(last.label)))), rows


def _queue_cells(queue: NamedQueueView, *, narrow: bool) -> tuple[Cell, ...]:
    alarm = "bold red" if queue.stale else ""
    name = queue.name
    if queue.stale and queue.read_age_s is not None:
        name += f" ({fmt.coarse_age(queue.read_age_s)} old)"
    figures = queue.figures
    pool = f"{queue.workers}/{queue.desired_workers} {queue.min_workers}..{queue.max_workers}"
    wait = fmt.wait(queue.wait_p50_s, queue.wait_max_s, approximate=queue.wait_p50_approximate)
    if queue.wait_p50_s is None and queue.oldest_wait_at_least_s is not None:
        wait = f"≥{fmt.age(queue.oldest_wait_at_least_s)}"  # unconsumed that long at least
    return (
        (name, alarm or "bold"),
        (pool, alarm or ("italic" if queue.limits_pending else "")),
        (fmt.figure(figures.ready), alarm),
        (fmt.figure(figures.unacked), alarm),
        (fmt.figure(figures.delayed) if narrow else _delayed(figures), alarm),
        (fmt.figure(figures.dead), alarm or ("red" if figures.dead else "")),
        (wait, alarm),
        (fmt.age(queue.clear_s), alarm),
    )


def _delayed(figures: QueueView) -> str:
    """The delayed count, with the bound on when the next is due: ``3 ≤14m``."""
    count = fmt.figure(figures.delayed)
    if not figures.delayed or figures.next_due_within_s is None:
        return count
    return f"{count} ≤{fmt.age(figures.next_due_within_s)}"


def _backlog_cell(queue: NamedQueueView, width: int) -> Cell:
    line, peak = fmt.sparkline(queue.backlog_history, width)
    return f"{line} {fmt.count(peak)}", "bold red" if queue.stale else "cyan"


def decisions_text(view: FarmView, now: float) -> Text:
    """The latest scaling decisions, latest first."""
    if not view.decisions:
        return Text("no scaling decision yet", style="dim")
    several = len(view.supervisors) > 1
    lines = Text(no_wrap=True, overflow="ellipsis")
    for number, decision in enumerate(view.decisions):
        if number:
            lines.append("\n")
        arrow = "▲" if decision.to_workers > decision.from_workers else "▼"
        lines.append(f"{fmt.age(now - decision.at):>5} ago ", "dim")
        if several:
            lines.append(f"{decision.supervisor_id} ", "cyan")
        lines.append(f"{arrow} {decision.from_workers}→{decision.to_workers} ", "bold")
        lines.append(decision.reason)
    return lines


def event_line(event: FarmEvent) -> Text:
    """One lifecycle event for the log pane (its time as the supervisor's wall clock, UTC)."""
    text = Text()
    text.append(f"{fmt.clock_time(event.at)} ", "dim")
    text.append(event.message, _LEVEL_STYLES.get(event.level, ""))
    return text


class OverviewScreen(DashboardScreen):
    """Supervisors, the farm's rates, the queues, workers (stale heartbeats highlighted),
    decisions, and the log of lifecycle events.

    On a terminal under 32 lines the decisions and events give their room to the tables.
    """

    VERTICAL_BREAKPOINTS = _HEIGHT_BREAKPOINTS
    HORIZONTAL_BREAKPOINTS = _WIDTH_BREAKPOINTS

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "worker_command('drain_worker')", "Drain"),
        Binding("r", "worker_command('restart_worker')", "Restart"),
    ]

    DEFAULT_CSS = """
    OverviewScreen #top { height: 9; }
    OverviewScreen #queues { height: auto; max-height: 10; border: round $primary; }
    OverviewScreen #supervisors { width: 1fr; border: round $primary; }
    OverviewScreen #queue { width: 46; border: round $primary; padding: 0 1; }
    OverviewScreen.-wide #queue { width: 1fr; }
    OverviewScreen.-small #queue { width: 40; }
    OverviewScreen #queue-figures { height: 2; }
    OverviewScreen .rate { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    OverviewScreen #workers { height: 1fr; border: round $primary; }
    OverviewScreen #bottom { height: 10; }
    OverviewScreen #decisions {
        width: 1fr; border: round $primary; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    OverviewScreen #events { width: 1fr; border: round $primary; }
    OverviewScreen.-short #bottom { display: none; }
    """

    def compose(self) -> ComposeResult:
        """The panes."""
        yield StatusBar(id="status")
        with Horizontal(id="top"):
            yield LiveTable(_SUPERVISOR_COLUMNS, id="supervisors")
            with Vertical(id="queue"):
                yield Static(id="queue-figures")
                yield Static(id="enqueue-label", classes="rate")
                yield Static(id="enqueue", classes="rate")
                yield Static(id="completion-label", classes="rate")
                yield Static(id="completion", classes="rate")
        yield LiveTable(_QUEUE_COLUMNS, id="queues")
        yield LiveTable(_WORKER_COLUMNS, id="workers")
        with Horizontal(id="bottom"):
            yield Static(id="decisions")
            yield RichLog(id="events", max_lines=500, wrap=True, min_width=20)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, titles, and the events heard so far."""
        self._supervisor_table = self.query_one("#supervisors", LiveTable)
        self._queue_table = self.query_one("#queues", LiveTable)
        self._worker_table = self.query_one("#workers", LiveTable)
        self.query_one("#supervisors").border_title = "Supervisors"
        self.query_one("#queue").border_title = "Queue"
        self.query_one("#queues").border_title = "Queues"
        self.query_one("#workers").border_title = "Workers"
        self.query_one("#decisions").border_title = "Scaling decisions"
        self.query_one("#events").border_title = "Events"
        self._event_cursor = 0
        self._worker_table.focus()

    def on_resize(self) -> None:
        """Draw again once laid out anew: the sparklines are as wide as their panes, and
        a breakpoint may have just resized those."""
        self.call_after_refresh(self.dashboard.refresh_screen)

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Update every pane."""
        super().refresh_view(view, now)
        columns, rows = supervisor_layout(view, self.app.size.width)
        self._supervisor_table.set_columns(columns)
        self._supervisor_table.update(rows)
        # The pane's borders take 2 cells, and a scroll bar 2 more once rows overflow it.
        width = self.app.size.width - 2 - (2 if len(view.queues) > _QUEUE_ROWS_SHOWN else 0)
        columns, rows = queue_layout(view, width)
        self._queue_table.set_columns(columns)
        self._queue_table.update(rows)
        self._worker_table.update(worker_rows(view))
        several = len(view.queues) > 1
        self.query_one("#queue").border_title = "All queues" if several else "Queue"
        self.query_one("#queues").border_title = f"Queues ({len(view.queues)})"
        self.query_one("#workers").border_title = f"Workers ({len(view.workers)})"
        self.query_one("#queue-figures", Static).update(queue_text(view, now))
        for name, verb, rate, history in (
            ("enqueue", "enqueued", view.enqueue_rate, view.enqueue_history),
            ("completion", "completed", view.completion_rate, view.completion_history),
        ):
            line = self.query_one(f"#{name}", Static)
            label, spark = rate_lines(verb, rate, history, line.size.width or 40, view, now)
            self.query_one(f"#{name}-label", Static).update(label)
            line.update(spark)
        self.query_one("#decisions", Static).update(decisions_text(view, now))
        events, self._event_cursor = self.dashboard.model.events_since(self._event_cursor)
        log = self.query_one("#events", RichLog)
        for event in events:
            log.write(event_line(event))

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        """The supervisor under the cursor is the one limits and shutdown go to."""
        if event.table.id == "supervisors" and event.key is not None:
            self.dashboard.selected_supervisor_id = event.key

    def selected_queue(self) -> str | None:
        """The queue under the cursor of the queues table, while that table has the focus
        (limits go to that queue's pool then)."""
        return self._queue_table.selected_key if self._queue_table.has_focus else None

    def selected_worker(self) -> str | None:
        """The worker under the cursor of the workers table."""
        return self._worker_table.selected_key

    def action_worker_command(self, command: str) -> None:
        """Drain or restart the worker under the cursor."""
        worker_id = self.selected_worker()
        now = self.dashboard.clock()
        view = self.dashboard.model.view(now)
        worker = next((w for w, _ in view.workers if w.worker_id == worker_id), None)
        if worker is None:
            self.notify("no worker selected", severity="warning")
            return
        verb = "drain" if command == "drain_worker" else "restart"
        self.dashboard.send(
            worker.supervisor_id,
            {"command": command, "worker_id": worker.worker_id},
            f"asked {worker.supervisor_id} to {verb} {worker.worker_id}",
        )
