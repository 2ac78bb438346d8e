"""The options the demo queues its jobs with, and the behaviour its pretend partners have.

Apart from the jobs module (which sets up telemetry when imported, for workers), so that
the tour can know them without importing the jobs.
"""

from __future__ import annotations

__all__ = [
    "BATCH_REPORT_HARD_TIMEOUT_S",
    "BATCH_REPORT_SOFT_TIMEOUT_S",
    "INVOICE_RETRIES",
    "REPORT_HARD_TIMEOUT_S",
    "REPORT_SECTION_S",
    "REPORT_SOFT_TIMEOUT_S",
    "WAREHOUSE_RETRIES",
    "WAREHOUSE_SUCCEEDS_ON_ATTEMPT",
]

#: Reports are cancelled past this (soft timeout)...
REPORT_SOFT_TIMEOUT_S = 1.0
#: ...and the worker running one is ended past this (hard timeout).
REPORT_HARD_TIMEOUT_S = 2.0
#: Time to build one section of a report: more than 10 sections overrun the soft timeout.
REPORT_SECTION_S = 0.1
#: Reports of a batch (``POST /reports/batch``) take seconds each, within these timeouts.
BATCH_REPORT_SOFT_TIMEOUT_S = 30.0
BATCH_REPORT_HARD_TIMEOUT_S = 60.0
#: The warehouse API fails on the first attempts, then answers...
WAREHOUSE_SUCCEEDS_ON_ATTEMPT = 3
#: ...and three retries are enough.
WAREHOUSE_RETRIES = 3
#: The accounting system always refuses: after these retries the job is dead-lettered.
INVOICE_RETRIES = 2
