"""The dashboard's screens."""

from fast_app.farm_tui.screens._base import Dashboard, DashboardScreen, StatusBar
from fast_app.farm_tui.screens.confirm import ConfirmScreen
from fast_app.farm_tui.screens.dead_letters import DeadLettersScreen
from fast_app.farm_tui.screens.functions import FunctionsScreen
from fast_app.farm_tui.screens.help import HelpScreen
from fast_app.farm_tui.screens.jobs import JobsScreen
from fast_app.farm_tui.screens.output import OutputScreen
from fast_app.farm_tui.screens.overview import OverviewScreen

__all__ = [
    "ConfirmScreen",
    "Dashboard",
    "DashboardScreen",
    "DeadLettersScreen",
    "FunctionsScreen",
    "HelpScreen",
    "JobsScreen",
    "OutputScreen",
    "OverviewScreen",
    "StatusBar",
]
