"""Output: what the supervisor logged and its workers wrote (``fast-app work --tui``).

Plain text in a ``Log`` (it draws only the lines in view): at a few hundred lines a
second, styling each line as it arrives would cost the screen its responsiveness.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Log

from fast_app.farm_tui.link import LogLine
from fast_app.farm_tui.screens._base import DashboardScreen, StatusBar
from fast_app.farm_tui.view import FarmView

__all__ = ["OutputScreen", "output_line"]


def output_line(line: LogLine) -> str:
    """One line: its time (UTC), its source, its text (tracebacks on their own lines)."""
    seconds = int(line.at) % 86_400
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
    if line.level == "output":
        return f"{clock} [{line.source}] {line.text}"
    return f"{clock} {line.level.upper():<7} {line.source}: {line.text}"


class OutputScreen(DashboardScreen):
    """The supervisor's log and its workers' output, as they would have gone to stderr."""

    DEFAULT_CSS = """
    OutputScreen #output { height: 1fr; border: round $primary; }
    """

    def compose(self) -> ComposeResult:
        """One log pane."""
        yield StatusBar(id="status")
        yield Log(id="output", max_lines=2000)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Its title; a note when there is no output to show."""
        log = self.query_one("#output", Log)
        log.border_title = "Output of the supervisor and its workers"
        self._cursor = 0
        if not self.dashboard.link.owns_farm:
            log.write_line(
                "The farm runs elsewhere: its processes' output stays there (here: this "
                "dashboard's own log). Its lifecycle events are on the overview."
            )

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Append the new lines."""
        super().refresh_view(view, now)
        lines, self._cursor = self.dashboard.output_since(self._cursor)
        if lines:
            self.query_one("#output", Log).write_lines(map(output_line, lines))
