"""Dead letters: list them with reason and error, requeue one or all, purge (confirmed).

``/`` filters the list (``DeadLetterFilter``, as ``fast-app dlq list`` does: free text,
``function:``, ``reason:``, ``queue:``, ``since:`` words); escape clears it. While a
filter is on, ``a`` and ``x`` act on the letters shown, after confirming.

The list is read when the screen first shows and on ``u``, not on every refresh: reading
takes each dead letter and gives it back, which a quorum queue counts as a delivery (see
``fast_app.farm.dead_letters._broker``). The snapshots' dead count says when the list is
behind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import ClassVar, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Static

from fast_app.farm.dead_letters import DeadLetter, DeadLetterFilter, RequeueReport, parse_query
from fast_app.farm.printable import printable
from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.screens.confirm import ConfirmScreen
from fast_app.farm_tui.table import Cell, Column, LiveTable, Row
from fast_app.farm_tui.view import FarmView

__all__ = ["DeadLettersScreen", "letter_details", "letter_rows"]

T = TypeVar("T")

LISTED = 500
_COLUMNS = (
    Column("Failed", "failed", 9),
    Column("Job", "job", 8),
    Column("Function", "function"),
    Column("Reason", "reason", 14),
    Column("Tries", "attempts", 5),
    Column("Error", "error"),
)
_VALUE_WIDTH = 120
_TRACEBACK_LINES = 60


def letter_key(letter: DeadLetter, position: int) -> str:
    """A row key: the job id, or the position for a message that is not a job."""
    return letter.job_id or f"#{position}"


def letter_rows(letters: list[DeadLetter], now: float) -> list[Row]:
    """One row per dead letter, oldest first."""
    rows = []
    for position, letter in enumerate(letters):
        failed = "-" if letter.failed_at is None else fmt.age(now - letter.failed_at.timestamp())
        cells: tuple[Cell, ...] = (
            (failed if failed == "-" else failed + " ago", "dim"),
            (fmt.short_id(printable(letter.job_id or "-")), ""),
            (printable(letter.function or "-"), ""),
            (printable(letter.reason or "-"), "yellow"),
            ("-" if letter.attempts is None else str(letter.attempts), ""),
            (fmt.shorten(printable(_error(letter)), 100), "red"),
        )
        rows.append((letter_key(letter, position), cells))
    return rows


def letter_details(letter: DeadLetter, now: float) -> Text:
    """One dead letter in full: arguments (shortened), context, error, traceback."""
    # A dead letter holds whatever its publisher wrote: every text is escaped, and
    # appended as plain text (never parsed as markup).
    text = Text()
    text.append("job ", "dim").append(printable(letter.job_id or "-"), "bold")
    text.append("  ").append(printable(letter.function or "-"), "bold cyan")
    text.append(f"  {printable(letter.reason or '-')}", "yellow")
    attempts = "- attempts" if letter.attempts is None else fmt.plural(letter.attempts, "attempt")
    text.append(f"  after {attempts} on {printable(letter.worker or '-')}", "dim")
    if letter.failed_at is not None:
        text.append(f", {fmt.age(now - letter.failed_at.timestamp())} ago", "dim")
    if letter.args is None or letter.kwargs is None:
        text.append("\nnot a job envelope: ", "dim").append(fmt.shorten(repr(letter.body), 200))
    else:
        parts = [_value(value) for value in letter.args]
        parts += [f"{name}={_value(value)}" for name, value in letter.kwargs.items()]
        text.append("\narguments  ", "dim").append(fmt.shorten(", ".join(parts), 400) or "-")
        context = letter.context or {}
        keys = ", ".join(f"{printable(key)}={_value(value)}" for key, value in context.items())
        text.append("\ncontext    ", "dim").append(fmt.shorten(keys, 400) or "(empty)")
    text.append("\nerror      ", "dim").append(printable(_error(letter)), "red")
    if letter.traceback:
        traceback = printable(letter.traceback, keep_lines=True)
        lines = traceback.rstrip().splitlines()[-_TRACEBACK_LINES:]
        text.append("\ntraceback\n", "dim").append("\n".join(lines))
    return text


def _error(letter: DeadLetter) -> str:
    if letter.error_type and letter.error:
        return f"{letter.error_type}: {letter.error}"
    return letter.error_type or letter.error or "-"


def _value(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(value)
    return fmt.shorten(printable(text), _VALUE_WIDTH)


class DeadLettersScreen(DashboardScreen):
    """The dead-lettered jobs; requeue the selected one or all, purge after confirming."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "requeue_selected", "Requeue"),
        Binding("a", "requeue_all", "Requeue all"),
        Binding("x", "purge", "Purge"),
        Binding("u", "reload", "Reload"),
        Binding(
            "slash",
            "filter",
            "Filter",
            key_display="/",
            tooltip="text, function:, reason:, queue:, since:1h; a and x then act on those shown",
        ),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    #: At 80 columns the footer has no room for every key: these go first.
    FOOTER_SPARE: ClassVar[frozenset[str]] = frozenset({"requeue_all", "reload"})

    DEFAULT_CSS = """
    DeadLettersScreen #letters { height: 1fr; border: round $primary; }
    DeadLettersScreen #letter-box { height: 1fr; border: round $primary; padding: 0 1; }
    DeadLettersScreen #filter { display: none; height: 1; border: none; padding: 0 1; }
    DeadLettersScreen #filter.shown { display: block; }
    """

    def compose(self) -> ComposeResult:
        """The list and the selected letter."""
        yield StatusBar(id="status")
        yield Input(
            placeholder="filter: text  function:app.reports  reason:failed  queue:NAME  since:1h",
            id="filter",
        )
        yield LiveTable(_COLUMNS, id="letters")
        with VerticalScroll(id="letter-box"):
            yield Static(id="letter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns; the first reading."""
        self._table = self.query_one("#letters", LiveTable)
        self.query_one("#letter-box").border_title = "Selected dead letter"
        self.letters: list[DeadLetter] = []
        self._listed_at: float | None = None
        self._loading = False
        self._queue_dead: int | None = None
        #: What ``/`` chose; empty: every dead letter read.
        self.where = DeadLetterFilter()
        self._table.focus()
        self.action_reload()

    def refresh_view(self, view: FarmView, now: float) -> None:
        """The title says how many there are, and whether the list is behind."""
        super().refresh_view(view, now)
        self._queue_dead = view.queue.dead
        self._show(now)

    def _show(self, now: float) -> None:
        if not self.is_attached:  # an answer that came back after the screen went away
            return
        shown = self.shown
        self._table.update(letter_rows(shown, now))
        if self._loading and self._listed_at is None:
            title = "Dead letters: reading…"
        else:
            title = f"Dead letters: {len(self.letters)} listed"
            if not self.where.is_empty:
                title = f"Dead letters: {len(shown)} of {len(self.letters)} match"
            if self._listed_at is not None:
                title += f" {fmt.age(now - self._listed_at)} ago"
            if self._queue_dead is not None and self._queue_dead != len(self.letters):
                title += f"; the queue holds {self._queue_dead} (u: reload)"
        self.query_one("#letters").border_title = title
        selected = self.selected()
        detail = (
            letter_details(selected, now)
            if selected is not None
            else Text("no dead letter selected", style="dim")
        )
        self.query_one("#letter", Static).update(detail)

    @property
    def shown(self) -> list[DeadLetter]:
        """The dead letters read that the filter matches, oldest first."""
        return self.where.select(self.letters)

    def selected(self) -> DeadLetter | None:
        """The dead letter under the cursor."""
        key = self._table.selected_key
        for position, letter in enumerate(self.shown):
            if letter_key(letter, position) == key:
                return letter
        return None

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        """Show the letter under the cursor."""
        self._show(self.dashboard.clock())

    # -- filter ----------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter input and type in it."""
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def action_clear_filter(self) -> None:
        """Forget the filter: every dead letter read is shown again."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.where = DeadLetterFilter()
        self._table.focus()
        self._show(self.dashboard.clock())

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the operator types; a ``since:`` not understood keeps the last filter."""
        now = dt.datetime.fromtimestamp(self.dashboard.clock(), dt.UTC)
        try:
            self.where = parse_query(event.value, now)
        except ValueError:
            return  # a half-typed ``since:1`` is not an error yet; the title keeps the count
        self._show(self.dashboard.clock())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: keep the filter, back to the list."""
        now = dt.datetime.fromtimestamp(self.dashboard.clock(), dt.UTC)
        try:
            parse_query(event.value, now)
        except ValueError as error:
            self.notify(str(error), severity="warning")
            return
        if self.where.is_empty:
            event.input.remove_class("shown")
        self._table.focus()

    # -- actions ---------------------------------------------------------------------

    def action_reload(self) -> None:
        """Read the dead letters again."""
        self._loading = True
        link = self.dashboard.link
        self._run(lambda: link.list_dead_letters(LISTED), self._listed, "could not read")

    def _listed(self, letters: list[DeadLetter]) -> None:
        self.letters = letters
        self._listed_at = self.dashboard.clock()
        self._loading = False
        self._show(self._listed_at)

    def action_requeue_selected(self) -> None:
        """Put the selected job back in the jobs queue (from attempt 1)."""
        letter = self.selected()
        if letter is None or letter.job_id is None:
            self.notify("no dead letter selected", severity="warning")
            return
        job_ids = [letter.job_id]
        link = self.dashboard.link
        self._run(lambda: link.requeue_dead_letters(job_ids), self._requeued, "could not requeue")

    def action_requeue_all(self) -> None:
        """Put every dead letter back in the jobs queue; with a filter, those shown, once
        confirmed."""
        link = self.dashboard.link
        if self.where.is_empty:
            self._run(lambda: link.requeue_dead_letters(None), self._requeued, "could not requeue")
            return
        job_ids = self._shown_job_ids()
        if not job_ids:
            self.notify("no dead letter matches the filter", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(
                    lambda: link.requeue_dead_letters(job_ids), self._requeued, "could not requeue"
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Requeue the {len(job_ids)} dead letters shown (matching "
                f"{self.where.describe()})? Those not shown stay."
            ),
            answered,
        )

    def _shown_job_ids(self) -> list[str]:
        return [letter.job_id for letter in self.shown if letter.job_id is not None]

    def _requeued(self, report: RequeueReport) -> None:
        requeued = len(report.requeued)
        message = f"requeued {requeued} job{'' if requeued == 1 else 's'}"
        if report.skipped:
            message += f"; {len(report.skipped)} left in place"
        if report.not_found:
            message += f"; {len(report.not_found)} not found"
        self.notify(message, severity="information" if report.complete else "warning")
        self.action_reload()

    def action_purge(self) -> None:
        """Delete every dead letter, once confirmed; with a filter, those shown."""
        if not self.where.is_empty:
            self._purge_shown()
            return
        count = self._queue_dead if self._queue_dead is not None else len(self.letters)

        def answered(yes: bool | None) -> None:
            if yes:
                link = self.dashboard.link
                self._run(link.purge_dead_letters, self._purged, "could not purge")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete all {count} dead letters of {self.dashboard.link.queue_name} for "
                "good? They cannot be requeued afterwards."
            ),
            answered,
        )

    def _purge_shown(self) -> None:
        job_ids = self._shown_job_ids()
        if not job_ids:
            self.notify("no dead letter matches the filter", severity="warning")
            return
        # The letters shown, by job id: not whatever else matches by now (or beyond LISTED).
        where = DeadLetterFilter(job_ids=frozenset(job_ids))

        def answered(yes: bool | None) -> None:
            if yes:
                link = self.dashboard.link
                self._run(lambda: link.purge_dead_letters(where), self._purged, "could not purge")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete the {len(job_ids)} dead letters shown (matching "
                f"{self.where.describe()}) for good? Those not shown stay."
            ),
            answered,
        )

    def _purged(self, count: int) -> None:
        self.notify(f"purged {count} dead letters")
        self.action_reload()

    def _run(self, start: Callable[[], Future[T]], then: Callable[[T], None], failure: str) -> None:
        """Start a link operation; ``then`` its result, on this loop; say why if it fails."""

        async def wait() -> None:
            try:
                result = await asyncio.wrap_future(start())
            except Exception as error:
                self._loading = False
                self.notify(f"{failure}: {error}", severity="error")
                return
            then(result)

        self.run_worker(wait(), group="dead-letters", exit_on_error=False)
