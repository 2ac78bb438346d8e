"""The overview: supervisors, workers, the queue and its rates, scaling, lifecycle events."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, RichLog, Sparkline, Static

from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.table import Cell, Column, LiveTable, Row
from fast_app.farm_tui.view import FarmEvent, FarmView, SupervisorView, WorkerView

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
_WORKER_COLUMNS = (
    Column("Worker", "worker"),
    Column("PID", "pid", 7),
    Column("State", "state", 8),
    Column("Jobs", "jobs", 4),
    Column("OK", "ok", 7),
    Column("Failed", "failed", 6),
    Column("RSS", "rss", 7),
    Column("Up", "up", 6),
    Column("Heartbeat", "heartbeat", 9),
)
_STATE_STYLES = {
    "busy": "green",
    "idle": "",
    "starting": "cyan",
    "paused": "yellow",
    "draining": "magenta",
}
_LEVEL_STYLES = {"warning": "yellow", "error": "bold red", "critical": "bold red"}


def supervisor_rows(view: FarmView) -> list[Row]:
    """The supervisors table."""
    rows = []
    for supervisor in view.supervisors:
        stale = "bold red" if supervisor.stale else ""
        limits_style = "italic" if supervisor.limits_pending else ""
        cells: tuple[Cell, ...] = (
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
    if supervisor.stopping:
        return "stopping", "bold magenta"
    if supervisor.paused:
        return "paused", "yellow"
    return "running", "green"


def worker_rows(view: FarmView) -> list[Row]:
    """The workers table; a worker with a stale heartbeat is red from end to end."""
    return [_worker_row(worker, stale) for worker, stale in view.workers]


def _worker_row(worker: WorkerView, stale: bool) -> Row:
    alarm = "bold red" if stale else ""
    failed_style = alarm or ("red" if worker.failed else "")
    cells: tuple[Cell, ...] = (
        (worker.worker_id, alarm),
        ("-" if worker.pid is None else str(worker.pid), alarm),
        (worker.state, alarm or _STATE_STYLES.get(worker.state, "")),
        (str(worker.in_flight), alarm),
        (str(worker.succeeded), alarm),
        (str(worker.failed), failed_style),
        (fmt.megabytes(worker.rss_bytes), alarm),
        (fmt.age(worker.uptime_s), alarm),
        (fmt.coarse_age(worker.heartbeat_age_s) + (" LATE" if stale else ""), alarm),
    )
    return worker.worker_id, cells


def queue_text(view: FarmView) -> Text:
    """Depths of the jobs queue, on two lines."""
    queue = view.queue

    def figure(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    text = Text()
    text.append("ready ", "dim").append(figure(queue.ready), "bold")
    text.append("  unacked ", "dim").append(figure(queue.unacked), "bold")
    text.append("\ndelayed ", "dim").append(figure(queue.delayed), "bold")
    dead_style = "bold red" if queue.dead else "bold"
    text.append("  dead ", "dim").append(figure(queue.dead), dead_style)
    text.append("  consumers ", "dim").append(figure(queue.consumers), "bold")
    return text


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
    text.append(f"{_clock(event.at)} ", "dim")
    text.append(event.message, _LEVEL_STYLES.get(event.level, ""))
    return text


def _clock(at: float) -> str:
    seconds = int(at) % 86_400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


class OverviewScreen(DashboardScreen):
    """Supervisors, workers (stale heartbeats highlighted), the queue, rates, decisions,
    and the log of lifecycle events."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "worker_command('drain_worker')", "Drain"),
        Binding("r", "worker_command('restart_worker')", "Restart"),
    ]

    DEFAULT_CSS = """
    OverviewScreen #top { height: 9; }
    OverviewScreen #supervisors { width: 1fr; border: round $primary; }
    OverviewScreen #queue { width: 46; border: round $primary; padding: 0 1; }
    OverviewScreen #queue-figures { height: 2; }
    OverviewScreen Sparkline { height: 1; margin-bottom: 0; }
    OverviewScreen #workers { height: 1fr; border: round $primary; }
    OverviewScreen #bottom { height: 10; }
    OverviewScreen #decisions {
        width: 1fr; border: round $primary; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    OverviewScreen #events { width: 1fr; border: round $primary; }
    """

    def compose(self) -> ComposeResult:
        """The panes."""
        yield StatusBar(id="status")
        with Horizontal(id="top"):
            yield LiveTable(_SUPERVISOR_COLUMNS, id="supervisors")
            with Vertical(id="queue"):
                yield Static(id="queue-figures")
                yield Static(id="enqueue-label")
                yield Sparkline([], id="enqueue")
                yield Static(id="completion-label")
                yield Sparkline([], id="completion")
        yield LiveTable(_WORKER_COLUMNS, id="workers")
        with Horizontal(id="bottom"):
            yield Static(id="decisions")
            yield RichLog(id="events", max_lines=500, wrap=True, min_width=20)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, titles, and the events heard so far."""
        self._supervisor_table = self.query_one("#supervisors", LiveTable)
        self._worker_table = self.query_one("#workers", LiveTable)
        self.query_one("#supervisors").border_title = "Supervisors"
        self.query_one("#queue").border_title = "Queue"
        self.query_one("#workers").border_title = "Workers"
        self.query_one("#decisions").border_title = "Scaling decisions"
        self.query_one("#events").border_title = "Events"
        self._event_cursor = 0
        self._worker_table.focus()

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Update every pane."""
        super().refresh_view(view, now)
        self._supervisor_table.update(supervisor_rows(view))
        self._worker_table.update(worker_rows(view))
        self.query_one("#workers").border_title = f"Workers ({len(view.workers)})"
        self.query_one("#queue-figures", Static).update(queue_text(view))
        self.query_one("#enqueue-label", Static).update(
            Text.assemble(("enqueued ", "dim"), (fmt.per_second(view.enqueue_rate), "bold"))
        )
        self.query_one("#completion-label", Static).update(
            Text.assemble(("completed ", "dim"), (fmt.per_second(view.completion_rate), "bold"))
        )
        self.query_one("#enqueue", Sparkline).data = list(view.enqueue_history)
        self.query_one("#completion", Sparkline).data = list(view.completion_history)
        self.query_one("#decisions", Static).update(decisions_text(view, now))
        events, self._event_cursor = self.dashboard.model.events_since(self._event_cursor)
        log = self.query_one("#events", RichLog)
        for event in events:
            log.write(event_line(event))

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        """The supervisor under the cursor is the one limits and shutdown go to."""
        if event.table.id == "supervisors" and event.key is not None:
            self.dashboard.selected_supervisor_id = event.key

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
