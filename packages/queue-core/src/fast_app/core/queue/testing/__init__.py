"""Helpers to test code that enqueues jobs, without a broker.

The ``queued_jobs`` pytest fixture is available once this package is installed.
"""

from ._recorder import CapturedJob, JobRecorder

__all__ = ["CapturedJob", "JobRecorder"]
