"""A live Textual dashboard of FastApp's async farm.

``fast-app work --tui`` runs the supervisor with the dashboard in one process
(``run_embedded``); ``fast-app top`` attaches to a running farm through its broker
(``run_remote``). Both are a ``FarmApp`` over a ``FarmLink``.
"""

from fast_app.farm_tui._entry import run_embedded, run_remote
from fast_app.farm_tui.app import FarmApp
from fast_app.farm_tui.embedded import EmbeddedFarm
from fast_app.farm_tui.errors import DashboardError, FarmLinkError, UnknownSupervisorError
from fast_app.farm_tui.limits import Limits, adjust_limits
from fast_app.farm_tui.link import FarmLink, LinkStatus, LinkUpdate, LogLine
from fast_app.farm_tui.remote import RemoteFarm
from fast_app.farm_tui.static import StaticFarm

__all__ = [
    "DashboardError",
    "EmbeddedFarm",
    "FarmApp",
    "FarmLink",
    "FarmLinkError",
    "Limits",
    "LinkStatus",
    "LinkUpdate",
    "LogLine",
    "RemoteFarm",
    "StaticFarm",
    "UnknownSupervisorError",
    "adjust_limits",
    "run_embedded",
    "run_remote",
]
