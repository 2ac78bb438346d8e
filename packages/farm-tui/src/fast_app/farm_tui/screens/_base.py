"""What every dashboard screen shares: the app's side of things, the status bar, and a
footer that keeps the keys that matter on a narrow terminal."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, cast

from rich.text import Text
from textual import events, on
from textual.binding import ActiveBinding
from textual.screen import Screen
from textual.widgets import Static

from fast_app.farm_tui.link import FarmLink, LogLine
from fast_app.farm_tui.model import FarmModel
from fast_app.farm_tui.screens._footer import footer_bindings
from fast_app.farm_tui.view import FarmView

__all__ = ["Dashboard", "DashboardScreen", "StatusBar"]


class Dashboard(Protocol):
    """What the screens use of the app (``FarmApp``)."""

    #: Actions whose keys every footer shows, however narrow (``?``, ``q``).
    FOOTER_KEPT: ClassVar[frozenset[str]]
    #: Actions of the app's keys that the footers leave out first when narrow.
    FOOTER_SPARE: ClassVar[frozenset[str]]
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
    """A screen the app refreshes with each new view (only while it is shown).

    Its footer shows every key that fits; on a terminal too narrow for all of them it
    leaves out the spare ones first (``FOOTER_SPARE``, the app's and the screen's), then
    others, but never the app's ``FOOTER_KEPT`` (``?`` and ``q``). The keys left out
    still work, and ``?`` lists them.
    """

    #: Actions of this screen's keys that its footer leaves out first when narrow.
    FOOTER_SPARE: ClassVar[frozenset[str]] = frozenset()

    @property
    def dashboard(self) -> Dashboard:
        """The app, as the screens see it."""
        return cast(Dashboard, self.app)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The keys active here, those the footer has no room for marked not shown.

        Textual reads this for the footer only (keys are dispatched along the binding
        chain), so hiding a key here leaves it bound.
        """
        dashboard = self.dashboard
        return footer_bindings(
            super().active_bindings,
            self.size.width or self.app.size.width,
            kept=dashboard.FOOTER_KEPT,
            spare=dashboard.FOOTER_SPARE | self.FOOTER_SPARE,
            key_display=self.app.get_key_display,
        )

    @on(events.Resize)
    def _choose_footer_keys(self) -> None:
        """The footer's room changed: choose its keys again (a handler of its own name:
        a screen may handle ``Resize`` too)."""
        self.refresh_bindings()

    def on_screen_resume(self) -> None:
        """Catch up at once when shown again (it was not refreshed while hidden)."""
        self.dashboard.refresh_screen()

    def refresh_view(self, view: FarmView, now: float) -> None:
        """Show ``view`` at Unix time ``now``."""
        self.query_one(StatusBar).update(self.dashboard.status_text(view))

    def selected_queue(self) -> str | None:
        """The queue whose limits the limit keys change here (``None``: a supervisor's)."""
        return None
