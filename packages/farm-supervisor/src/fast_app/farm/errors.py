"""Every error raised by ``fast_app.farm``; catch ``FarmError`` for all of them."""

from __future__ import annotations

__all__ = ["FarmConfigurationError", "FarmError", "JobImportError"]


class FarmError(Exception):
    """Base class of the errors raised by ``fast_app.farm``."""


class FarmConfigurationError(FarmError, ValueError):
    """A farm setting is missing or invalid."""


class JobImportError(FarmError):
    """A job names a function that a worker cannot or may not import."""
