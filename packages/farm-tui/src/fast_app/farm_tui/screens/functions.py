"""Functions: the last hour minute by minute, and each function's runs, failures and
runtimes over the last minutes — what Horizon's metrics and Flower's task pages show.

The figures are the supervisors' own (kept by them, so a dashboard that starts sees the
last hour at once), merged over every supervisor heard; the panel titles say how many
and how old the newest is.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from fast_app.farm.function_figures import FunctionRow
from fast_app.farm.messages.job_figures import MinuteTotals
from fast_app.farm_tui import _format as fmt
from fast_app.farm_tui.job_figures import FarmFigures, farm_figures
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.table import Column, LiveTable, Row, column_widths
from fast_app.farm_tui.view import FarmView, is_stale

__all__ = [
    "FunctionsScreen",
    "fitted_rows",
    "function_columns",
    "function_table_rows",
    "history_lines",
]

_COLUMNS = (
    Column("Function", "function"),
    Column("Queue", "queue"),
    Column("Runs/min", "rate", 8),
    Column("Fail%", "failed", 5),
    Column("Dead", "dead", 4),
    Column("Hard", "hard", 4),  # runs stopped at their hard timeout
    Column("p50", "p50", 6),
    Column("p95", "p95", 6),
    Column("Over", "window", 4),
)
_LABEL_WIDTH = 10
_PEAK_WIDTH = 16
_FUNCTION_WIDTHS = (14, 120)  # the function column takes the width the others leave


def function_columns(width: int, rows: Sequence[Row]) -> tuple[Column, ...]:
    """The columns for a table ``width`` cells wide showing ``rows``: each as wide as
    its cells, the function's as wide as the others leave (its names cut on the left)."""
    widths = column_widths(_COLUMNS, rows)
    others = sum(column_width + 2 for column_width in widths[1:])
    function_width = max(_FUNCTION_WIDTHS[0], min(widths[0], width - others - 2))
    return tuple(
        Column(column.label, column.key, function_width if n == 0 else widths[n])
        for n, column in enumerate(_COLUMNS)
    )


def function_table_rows(rows: Sequence[FunctionRow]) -> list[Row]:
    """Each function, busiest first: rate, share of failed runs, dead letters, hard
    timeouts, runtime percentiles, and the window they cover."""
    table: list[Row] = []
    for row in rows:
        tally, ratio = row.tally, row.failure_ratio
        failed_style = "" if not ratio else "bold red" if ratio >= 0.5 else "yellow"
        table.append(
            (
                f"{row.queue}/{row.function}",
                (
                    (row.function, ""),  # cut to fit by ``fitted_rows``
                    (row.queue, "dim"),
                    ("-" if row.runs_per_minute is None else fmt.count(row.runs_per_minute), ""),
                    ("-" if ratio is None else f"{ratio:.0%}", failed_style),
                    (str(tally.dead_lettered), "bold red" if tally.dead_lettered else ""),
                    (str(tally.hard_timeouts), "bold red" if tally.hard_timeouts else ""),
                    (fmt.seconds(row.p50_s), ""),
                    (fmt.seconds(row.p95_s), ""),
                    (fmt.coarse_age(row.window_s), "dim"),
                ),
            )
        )
    return table


def fitted_rows(rows: Sequence[Row], function_width: int) -> list[Row]:
    """``rows`` with each function name cut on the left to ``function_width`` (the end
    of a dotted path says most: ``…billing.charge_order``)."""
    fitted: list[Row] = []
    for key, cells in rows:
        (function, style), *rest = cells
        if len(function) > function_width:
            function = "…" + function[-(function_width - 1) :]
        fitted.append((key, ((function, style), *rest)))
    return fitted


def history_lines(history: Sequence[MinuteTotals], width: int) -> list[Text]:
    """The last hour, a cell a minute: runs that succeeded, runs that failed, each on its
    own scale with its peak, and the totals. A minute no supervisor reported is blank."""
    if not history:
        return [Text("No history yet: supervisors publish it once their workers run jobs.", "dim")]
    first = history[0].at
    by_minute = {minute.at: minute for minute in history}
    minutes = [first + 60 * n for n in range(int((history[-1].at - first) // 60) + 1)]
    cells = max(8, min(len(minutes), width - _LABEL_WIDTH - _PEAK_WIDTH))
    minutes = minutes[-cells:]

    def series(value: str) -> list[float | None]:
        return [
            None if (m := by_minute.get(at)) is None else float(getattr(m, value)) for at in minutes
        ]

    failed = [
        None if (m := by_minute.get(at)) is None else float(m.retried + m.dead_lettered)
        for at in minutes
    ]
    lines = []
    for label, values, style in (
        ("succeeded", series("succeeded"), "green"),
        ("failed", failed, "red"),
    ):
        spark, peak = fmt.sparkline(values, cells)
        line = Text(f"{label:<{_LABEL_WIDTH}}", "bold")
        line.append(spark, style)
        line.append(f" peak {fmt.count(peak or 0)}/min", "dim")
        lines.append(line)
    shown = [by_minute[at] for at in minutes if at in by_minute]
    counts = [
        (sum(m.succeeded for m in shown), "succeeded"),
        (sum(m.retried for m in shown), "retried"),
        (sum(m.dead_lettered for m in shown), "dead-lettered"),
        (sum(m.cancelled for m in shown), "cancelled"),
        (sum(m.hard_timeouts for m in shown), "hard timeouts"),
    ]
    said = ", ".join(
        f"{count:,} {what}" for n, (count, what) in enumerate(counts) if count or not n
    )
    span = f"{fmt.clock_time(minutes[0])} to {fmt.clock_time(minutes[-1] + 60)}"
    return [*lines, Text(f"{span}: {said}", "dim")]


class FunctionsScreen(DashboardScreen):
    """The hour's history on top, the functions table below."""

    DEFAULT_CSS = """
    FunctionsScreen #history { height: auto; border: round $primary; padding: 0 1; }
    FunctionsScreen #functions { height: 1fr; border: round $primary; }
    """

    _figures = FarmFigures((), (), 0, None)

    def compose(self) -> ComposeResult:
        """History, functions, footer."""
        yield StatusBar(id="status")
        yield Static(id="history")
        yield LiveTable(_COLUMNS, id="functions")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Titles until the first figures."""
        self.query_one("#history", Static).border_title = "Last hour, per minute"
        self.query_one("#functions", LiveTable).border_title = "Functions"

    def on_resize(self, event: events.Resize) -> None:
        """The history is as wide as the screen."""
        self._draw_history()

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Merge the supervisors' figures and show them."""
        super().refresh_view(view, now)
        model = self.dashboard.model
        states = [model.supervisor(supervisor_id) for supervisor_id in model.supervisor_ids]
        self._figures = figures = farm_figures(state.raw for state in states if state is not None)
        table = self.query_one("#functions", LiveTable)
        rows = function_table_rows(figures.functions)
        columns = function_columns(table.scrollable_content_region.width or 80, rows)
        table.set_columns(columns)
        table.update(fitted_rows(rows, columns[0].width or _FUNCTION_WIDTHS[0]))
        source = (
            "no supervisor reports them yet"
            if figures.newest_at is None
            else f"{fmt.plural(figures.supervisors, 'supervisor')}, "
            f"newest {fmt.coarse_age(max(0.0, now - figures.newest_at))} old"
        )
        # A silent supervisor's last figures still count until it is forgotten: say so,
        # with how old they are, rather than let them pass for current ones.
        silent_ages = [
            now - state.at
            for state in states
            if state is not None
            and state.raw.get("functions")
            and is_stale(now - state.at, state.heartbeat_interval_s)
        ]
        if silent_ages:
            source += (
                f"; {len(silent_ages)} SILENT for up to "
                f"{fmt.coarse_age(max(0.0, max(silent_ages)))}, counted as of then"
            )
        table.border_title = f"Functions, last 5 minutes ({source})"
        self._draw_history()

    def _draw_history(self) -> None:
        panel = self.query_one("#history", Static)
        width = (panel.size.width or self.size.width or 80) - 2
        lines = history_lines(self._figures.history, width)
        panel.update(Text("\n").join(lines))
