"""Every error raised by ``fast_app_demo``; catch ``DemoError`` for all of them."""

from __future__ import annotations

__all__ = [
    "DemoConfigurationError",
    "DemoError",
    "InvoiceRejectedError",
    "PartnerError",
    "WarehouseUnavailableError",
]


class DemoError(Exception):
    """Base class of the demo's own errors."""


class DemoConfigurationError(DemoError, ValueError):
    """A ``DEMO_*`` or ``OTEL_*`` variable that the demo reads is invalid."""


class PartnerError(DemoError):
    """A (pretend) partner system refused a job's call."""


class WarehouseUnavailableError(PartnerError):
    """The warehouse API is briefly down: worth retrying."""


class InvoiceRejectedError(PartnerError):
    """The accounting system refuses the invoice: retrying will not help."""
