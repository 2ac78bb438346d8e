"""The dashboard's errors."""

from __future__ import annotations

__all__ = ["DashboardError", "FarmLinkError", "UnknownSupervisorError"]


class DashboardError(Exception):
    """Base class of the dashboard's errors."""


class FarmLinkError(DashboardError):
    """The link to the farm cannot do what was asked (closed, not connected)."""


class UnknownSupervisorError(FarmLinkError):
    """A command was addressed to a supervisor this link cannot reach."""
