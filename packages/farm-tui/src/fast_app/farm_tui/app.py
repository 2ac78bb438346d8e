"""The dashboard: a Textual app over a ``FarmLink``.

Four times a second at most it polls the link (which never blocks: snapshots arrive on
other threads), feeds the model, and refreshes the screen that is shown, changing only
the table cells that changed. Keys send commands to the supervisors through the link.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches

from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.limits import adjust_limits
from fast_app.farm_tui.link import FarmLink, LinkStatus, LogLine
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.screens import (
    ConfirmScreen,
    DashboardScreen,
    DeadLettersScreen,
    FunctionsScreen,
    HelpScreen,
    JobsScreen,
    OutputScreen,
    OverviewScreen,
)
from fast_app.farm_tui.screens.help import key_lines
from fast_app.farm_tui.table import LiveTable
from fast_app.farm_tui.view import FarmView

__all__ = ["FarmApp"]

_REFRESH_S = 0.25
_OUTPUT_KEPT = 2_000
_TICKS_KEPT = 1_000


class FarmApp(App[int]):
    """The live dashboard of a farm.

    Args:
        link: how it reaches the farm.
        clock: Unix time now (tests fix it).
        refresh_s: seconds between two refreshes (the throttle).
        handle_signals: SIGTERM and SIGINT act as the quit key (for the command line;
            tests leave the process's signals alone).
    """

    TITLE = "fast-app farm"
    ENABLE_COMMAND_PALETTE = False
    MODES: ClassVar[dict[str, Any]] = {
        "overview": OverviewScreen,
        "jobs": JobsScreen,
        "dead_letters": DeadLettersScreen,
        "output": OutputScreen,
        "functions": FunctionsScreen,
    }
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('overview')", "Overview"),
        Binding("2", "switch_mode('jobs')", "Jobs"),
        Binding("3", "switch_mode('dead_letters')", "DLQ", tooltip="dead letters"),
        Binding("4", "switch_mode('output')", "Output"),
        Binding("5", "switch_mode('functions')", "Functions", tooltip="and the last hour"),
        # The limit keys leave the footer to the keys every screen needs (80 columns
        # hold no more); ``?`` lists them.
        Binding("plus,equals_sign", "change_limits(1, 0)", "Min+", key_display="+", show=False),
        Binding("minus", "change_limits(-1, 0)", "Min-", key_display="-", show=False),
        Binding(
            "greater_than_sign,full_stop",
            "change_limits(0, 1)",
            "Max+",
            key_display=">",
            show=False,
        ),
        Binding(
            "less_than_sign,comma", "change_limits(0, -1)", "Max-", key_display="<", show=False
        ),
        Binding("p", "toggle_pause", "Pause"),
        Binding("S", "shut_down_farm", "Shut down", tooltip="the supervisor under the cursor"),
        Binding("question_mark", "help", "Help", key_display="?"),
        # One key, two meanings: with --tui it stops the farm, in top it only leaves
        # (``check_action`` keeps the one that applies, in the footer and the help).
        Binding("q", "quit", "Quit", tooltip="drains the farm; q again kills its workers"),
        Binding("q", "detach", "Detach", tooltip="leaves the dashboard; the farm runs on"),
    ]
    #: The footer of every screen shows these keys, however narrow the terminal...
    FOOTER_KEPT: ClassVar[frozenset[str]] = frozenset({"help", "quit", "detach"})
    #: ...and, when it is too narrow for all, leaves these out first (``?`` lists them).
    FOOTER_SPARE: ClassVar[frozenset[str]] = frozenset({"toggle_pause", "shut_down_farm"})
    #: Where each screen's own keys work, for the help.
    _SCREEN_NAMES: ClassVar[dict[str, str]] = {
        "overview": "1 Overview",
        "jobs": "2 Jobs",
        "dead_letters": "3 Dead letters",
        "output": "4 Output",
        "functions": "5 Functions",
    }

    def __init__(
        self,
        link: FarmLink,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float = _REFRESH_S,
        handle_signals: bool = False,
    ) -> None:
        super().__init__()
        self.link = link
        self.model = FarmModel()
        self._clock = clock
        self._refresh_s = refresh_s
        self._handle_signals = handle_signals
        self._output: collections.deque[tuple[int, LogLine]] = collections.deque(
            maxlen=_OUTPUT_KEPT
        )
        self._output_count = 0
        self._link_status = LinkStatus(False, detail="starting")
        self._quit_requests = 0
        self._exiting = False
        #: The supervisor under the overview's cursor (limits and shutdown go to it).
        self.selected_supervisor_id: str | None = None
        #: Seconds each refresh took (poll, model, screen), for the benchmark.
        self.refresh_durations: collections.deque[float] = collections.deque(maxlen=_TICKS_KEPT)

    def clock(self) -> float:
        """Unix time now."""
        return self._clock()

    # -- refreshing ------------------------------------------------------------------

    def on_mount(self) -> None:
        """Start the link, the refresh timer and (from the command line) signal handling."""
        self.link.start()
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._request_quit)
        self._tick()
        self.set_interval(self._refresh_s, self._tick)

    def on_unmount(self) -> None:
        """Give the process's signals back."""
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def _tick(self) -> None:
        started = time.perf_counter()
        update = self.link.poll()
        for snapshot in update.snapshots:
            self.model.ingest(snapshot)
        self.model.ingest_readings(update.queue_readings)
        if update.skipped_log_lines:
            note = f"({update.skipped_log_lines} lines skipped: they came too fast)"
            self._keep_output(LogLine(self.clock(), "warning", "dashboard", note))
        for line in update.log_lines:
            self._keep_output(line)
        self._link_status = self.link.status()
        if self.link.owns_farm and self._link_status.stopped:
            if not self._exiting:
                self._exiting = True
                code = self._link_status.exit_code or 0
                self.exit(code, return_code=code)
            return
        self.refresh_screen()
        self.refresh_durations.append(time.perf_counter() - started)

    def _keep_output(self, line: LogLine) -> None:
        self._output_count += 1
        self._output.append((self._output_count, line))

    def output_since(self, cursor: int) -> tuple[list[LogLine], int]:
        """Output lines after ``cursor`` (0: all kept), and the next cursor."""
        return [line for number, line in self._output if number > cursor], self._output_count

    def refresh_screen(self) -> None:
        """Show the current view on the active screen (not on a dialog over it)."""
        # The refresh timer can fire once more while the app exits, after its screens
        # were taken down.
        if not self.screen_stack:
            return
        screen = self.screen
        if not isinstance(screen, DashboardScreen) or not screen.is_mounted:
            return
        now = self.clock()
        self.model.forget_silent(now)
        # Its widgets may not be there: composing it is still under way, or it is being
        # taken down as the app exits. The next refresh catches up.
        with contextlib.suppress(NoMatches):
            screen.refresh_view(self.model.view(now), now)

    def status_text(self, view: FarmView) -> Text:
        """The status bar: queue, supervisors, workers, jobs; paused, stopping; then what
        the dashboard knows and how old it is (the link, the latest data, the broker)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if view.unconsumed:
            # First on the line: the one state that needs someone now, whatever else.
            unconsumed = [queue for queue in view.queues if queue.name in view.unconsumed]
            ready = sum(queue.figures.ready or 0 for queue in unconsumed)
            names = ", ".join(view.unconsumed)
            watched = [q.oldest_wait_at_least_s for q in unconsumed if q.oldest_wait_at_least_s]
            since = f" for ≥{fmt.age(max(watched))}" if watched else ""
            text.append(
                f" BACKLOG WITH NO CONSUMERS{since}: {ready:,} ready in {names} ",
                "bold white on red",
            )
            text.append(" ")
        farm = view.queue_name or self.link.queue_name
        if len(view.queues) > 1:  # named after QUEUE_NAME, where its snapshots travel
            text.append(f"farm {farm} · {len(view.queues)} queues", "bold")
        else:
            text.append(f"queue {farm}", "bold")
        text.append(f" · {fmt.plural(len(view.supervisors), 'supervisor')}")
        text.append(f" · {fmt.plural(len(view.workers), 'worker')} · {view.running_total} running")
        if view.waiting_total:  # held in workers for a slot: in neither ready nor running
            text.append(f" · {view.waiting_total:,} waiting")
        owns_farm = self.link.owns_farm
        if view.stopping or (owns_farm and self._quit_requests):
            in_flight = fmt.plural(view.running_total, "job")
            workers = fmt.plural(len(view.workers), "worker")
            # Only the farm's own dashboard can kill its workers; ``top`` just leaves.
            then = "q again: kill them" if owns_farm else "q: detach, the farm stops on its own"
            text.append(
                f"  STOPPING: draining {workers}, {in_flight} in flight ({then})", "bold magenta"
            )
        elif view.paused:
            text.append("  PAUSED (p: resume)", "bold yellow")
        self._append_freshness(text, view)
        return text

    def _append_freshness(self, text: Text, view: FarmView) -> None:
        """The link's state and since when, the latest data's age, an unreachable broker."""
        now = self.clock()
        status = self._link_status
        since = "" if status.since is None else f" since {_when(status.since, now)}"
        if not status.connected and not status.stopped:
            text.append(f"  {status.detail or 'not connected'}{since}", "bold red")
        elif status.detail and not self.link.owns_farm:
            text.append(f"  {status.detail}", "dim")
        if view.broker_unreachable_since is not None:
            text.append(
                f"  broker unreachable since {_when(view.broker_unreachable_since, now)}",
                "bold red",
            )
        if view.data_at is None:
            text.append("  no data yet", "dim")
        elif view.data_stale:
            text.append(f"  STALE: last data {_when(view.data_at, now)}", "bold red")
        else:
            text.append(f"  data {fmt.coarse_age(now - view.data_at)} old", "dim")

    # -- commands --------------------------------------------------------------------

    def send(self, supervisor_id: str, command: dict[str, Any], done: str) -> None:
        """Send ``command``; notify ``done`` once sent, or the error."""
        try:
            sent = self.link.send_command(supervisor_id, command)
        except Exception as error:
            self.notify(f"not sent: {error}", severity="error")
            return
        self.run_worker(self._report(sent, done), group="commands", exit_on_error=False)

    async def _report(self, sent: Future[None], done: str) -> None:
        """Wait for the link to send (off this loop), then say how it went."""
        try:
            await asyncio.wrap_future(sent)
        except Exception as error:
            self.notify(f"not sent: {error}", severity="error")
        else:
            self.notify(done, timeout=3)

    def target_supervisor(self) -> str | None:
        """The supervisor limits apply to: the one under the overview's cursor, else
        the first."""
        ids = self.model.supervisor_ids
        if not ids:
            return None
        return self.selected_supervisor_id if self.selected_supervisor_id in ids else ids[0]

    def limits_queue(self) -> str | None:
        """The queue the limit keys change the pool of: the one under the queues table's
        cursor while that table has the focus (``None``: a supervisor's limits)."""
        screen = self.screen if self.screen_stack else None
        return screen.selected_queue() if isinstance(screen, DashboardScreen) else None

    def action_change_limits(self, min_change: int, max_change: int) -> None:
        """Raise or lower min or max workers of the target supervisor.

        A supervisor with a pool per queue has limits per queue, and an overall maximum:
        the keys change the pool of the queue under the queues table's cursor while that
        table has the focus, else that overall maximum (its minimum is the sum of the
        pools'). A supervisor of one queue has one set of limits, changed as before.
        """
        supervisor_id = self.target_supervisor()
        if supervisor_id is None:
            self.notify("no supervisor heard yet", severity="warning")
            return
        model = self.model
        several = model.serves_several_queues(supervisor_id)
        queue = self.limits_queue() if several else None
        refusal = self._limits_refusal(supervisor_id, queue, several, min_change)
        if refusal:
            self.notify(refusal, severity="warning")
            return
        now = self.clock()
        current = model.limits(supervisor_id, now, queue=queue)
        if current is None:
            self.notify(f"{supervisor_id}: no limits heard yet", severity="warning")
            return
        wanted = adjust_limits(current, min_change=min_change, max_change=max_change)
        target = supervisor_id if queue is None else f"{supervisor_id} {queue}"
        overall_only = several and queue is None
        if overall_only and wanted.min_workers != current.min_workers:
            self.notify(
                f"{supervisor_id}: max stays at least the sum of its queues' minimums "
                f"({current.min_workers})",
                severity="warning",
            )
            return
        if wanted == current:
            self.notify(
                f"{target}: min {current.min_workers}, max {current.max_workers} "
                "already at their bounds",
                severity="warning",
            )
            return
        if queue is not None:
            room = model.room_for_minimum(supervisor_id, queue, now)
            if wanted.min_workers > room:
                self.notify(
                    f"{target}: min {wanted.min_workers} would take the queues' minimums "
                    f"past {supervisor_id}'s overall max: raise that first (> outside the "
                    "queues table)",
                    severity="warning",
                )
                return
        model.pending_limits.request(supervisor_id, wanted, now, queue=queue)
        command: dict[str, Any] = {"command": "set_limits", "max_workers": wanted.max_workers}
        if not overall_only:
            command["min_workers"] = wanted.min_workers
        if queue is not None:
            command["queue"] = queue
        done = (
            f"{target}: max {wanted.max_workers} (all queues)"
            if overall_only
            else f"{target}: min {wanted.min_workers}, max {wanted.max_workers}"
        )
        self.send(supervisor_id, command, done)
        self.refresh_screen()

    def _limits_refusal(
        self, supervisor_id: str, queue: str | None, several: bool, min_change: int
    ) -> str | None:
        """Why a limits key cannot apply here, if it cannot."""
        if queue is not None and not self.model.queue_served_by(supervisor_id, queue):
            return f"{supervisor_id} does not serve {queue}: select a supervisor that does"
        if several and queue is None and min_change:
            return (
                f"{supervisor_id} has a pool per queue: min workers are per queue "
                "(tab to the queues table and pick one)"
            )
        return None

    def action_toggle_pause(self) -> None:
        """Pause consumption on every supervisor, or resume it if all are paused."""
        view = self.model.view(self.clock())
        if not view.supervisors:
            self.notify("no supervisor heard yet", severity="warning")
            return
        command = "resume" if view.paused else "pause"
        for supervisor in view.supervisors:
            self.send(
                supervisor.supervisor_id,
                {"command": command},
                f"{supervisor.supervisor_id}: {command}",
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Shutting a farm down is for ``top``; with ``--tui``, quitting does it."""
        if action in ("shut_down_farm", "detach"):
            return not self.link.owns_farm
        if action == "quit":
            return self.link.owns_farm
        return True

    def help_lines(self) -> list[tuple[str, str, str]]:
        """Every key, by where it works, from the app's and the screens' bindings (the
        ones this mode offers only)."""
        lines = [
            line
            for line, binding in zip(
                key_lines("Everywhere", self.BINDINGS),
                Binding.make_bindings(self.BINDINGS),
                strict=True,
            )
            if self.check_action(binding.action.split("(")[0], ())
        ]
        for mode, screen in self.MODES.items():
            lines += key_lines(self._SCREEN_NAMES.get(mode, mode), screen.BINDINGS)
        lines += key_lines("Tables", LiveTable.BINDINGS)
        # "plus,equals_sign" is two bindings shown as one key: list each line once.
        return list(dict.fromkeys(lines))

    def action_help(self) -> None:
        """Show every key and screen."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_lines()))

    def action_detach(self) -> None:
        """Leave the dashboard; the farm runs on."""
        self._request_quit()

    def action_shut_down_farm(self) -> None:
        """Ask the target supervisor to drain and stop (after confirming)."""
        supervisor_id = self.target_supervisor()
        if supervisor_id is None:
            self.notify("no supervisor heard yet", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(supervisor_id, {"command": "shutdown"}, f"{supervisor_id}: shutdown")

        self.push_screen(
            ConfirmScreen(
                f"Shut supervisor {supervisor_id} down? Its workers finish their jobs and "
                "stop; the dashboard stays."
            ),
            answered,
        )

    async def action_quit(self) -> None:
        """Quit: with ``--tui``, drain the farm first (again: kill); with ``top``, detach."""
        self._request_quit()

    def _request_quit(self) -> None:
        if not self.link.owns_farm:
            self.exit(0)
            return
        self._quit_requests += 1
        self.link.stop()
        if self._quit_requests == 1:
            self.notify("draining the workers; q again kills them", title="Stopping")
        else:
            self.notify("killing the workers", severity="warning")
        self.refresh_screen()


def _when(at: float, now: float) -> str:
    """A moment and how long ago: ``14:03:07Z (20s ago)``."""
    return f"{fmt.clock_time(at)} ({fmt.coarse_age(max(0.0, now - at))} ago)"
