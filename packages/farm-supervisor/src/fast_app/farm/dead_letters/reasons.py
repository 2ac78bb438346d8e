"""``DeadReason``: why a job was dead-lettered.

Written by workers (``fast_app.farm.worker``) into each dead letter, read back by the
dead-letter API: one vocabulary for both sides.
"""

from __future__ import annotations

__all__ = ["DeadReason"]


class DeadReason:
    """Why a job was dead-lettered (the ``x-fast-app-dead-reason`` header)."""

    FAILED = "failed"
    SOFT_TIMEOUT = "soft_timeout"
    HARD_TIMEOUT = "hard_timeout"
    CONSUMER_TIMEOUT = "consumer_timeout"
    INVALID = "invalid"
    NOT_ALLOWED = "not_allowed"
    BAD_SIGNATURE = "bad_signature"
    #: An operator cancelled the running job (``fast-app cancel``, the dashboard).
    CANCELLED = "cancelled"
