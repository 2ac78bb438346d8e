"""What every dashboard screen shares: the app's side of things, and the status bar."""

from __future__ import annotations

from typing import Any, Protocol, cast

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static

from fast_app.farm_tui.link import FarmLink, LogLine
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.view import FarmView

__all__ = ["Dashboard", "DashboardScreen", "StatusBar"]


class Dashboard(Protocol):
    """What the screens use of the app (``FarmApp``)."""

    model: FarmModel
    link: FarmLink
    selected_supervisor_id: str | None

    def clock(self) -> float:
        """Unix time now (fixed in snapshot tests)."""
        ...

    def status_text(self, view: FarmView) -> Text:
        """The status bar's line."""
        ...

    def send(self, supervisor_id: str, command: dict[str, Any], done: str) -> None:
        """Send a command; say ``done`` when sent, or why it failed."""
        ...

    def output_since(self, cursor: int) -> tuple[list[LogLine], int]:
        """Output lines after ``cursor``, and the next cursor."""
        ...

    def refresh_screen(self) -> None:
        """Show the current view on the active screen now."""
        ...


class StatusBar(Static):
    """One line on top: the queue, the supervisors, paused or stopping, the link."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $primary-background;
        color: $text;
        padding: 0 1;
    }
    """


class DashboardScreen(Screen[None]):
    """A screen the app refreshes with each new view (only while it is shown)."""

    @property
    def dashboard(self) -> Dashboard:
        """The app, as the screens see it."""
        return cast(Dashboard, self.app)

    def on_screen_resume(self) -> None:
        """Catch up at once when shown again (it was not refreshed while hidden)."""
        self.dashboard.refresh_screen()

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Show ``view`` at Unix time ``now``."""
        self.query_one(StatusBar).update(self.dashboard.status_text(view))

    def selected_queue(self) -> str | None:
        """The queue whose limits the limit keys change here (``None``: a supervisor's)."""
        return None
