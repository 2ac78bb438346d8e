"""The demo's queues: welcome emails on a fast queue, reports on a slow one.

- **Emails, by route.** ``POST /signup`` calls ``queue(send_welcome_email, user_id)`` and
  knows nothing of queues: ``QUEUE_ROUTES`` sends the job to ``emails``. The demo's
  entry points set ``QUEUE_ROUTES`` to ``DEFAULT_ROUTES`` when it is unset
  (``use_default_routes``); set it yourself, even empty, and yours is used.
- **Reports, by name.** The report endpoints name their queue in the call
  (``__queue=``, from ``DEMO_REPORTS_QUEUE``, default ``reports``): the call site knows
  that a report is slow.
- Everything else (orders, invoices, thumbnails) goes to ``QUEUE_NAME``.

On the farm, ``fast-app work --queues`` gives each queue a pool of its own
(``DemoQueues.farm_pools``), so that a burst of reports never delays a welcome email.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from fast_app.core.queue import QueueSettings, configure
from fast_app.core.queue import get_settings as get_queue_settings
from fast_app_demo.settings import DemoSettings, get_settings

__all__ = [
    "DEFAULT_ROUTES",
    "EMAILS_QUEUE",
    "FARM_MAX_WORKERS",
    "WELCOME_EMAIL_JOB",
    "DemoQueues",
    "current_queues",
    "use_default_routes",
]

#: The queue of the welcome emails in ``DEFAULT_ROUTES``.
EMAILS_QUEUE = "emails"
#: The dotted path of the welcome email job (``fast_app_demo.jobs.send_welcome_email``),
#: written out: importing the jobs module sets up telemetry.
WELCOME_EMAIL_JOB = "fast_app_demo.jobs.send_welcome_email"
#: ``QUEUE_ROUTES`` of the demo's processes, unless the variable is set.
DEFAULT_ROUTES = f"{WELCOME_EMAIL_JOB}={EMAILS_QUEUE}"
#: The overall ``--max-workers`` of the demo's farm: the three pools' minimums (1 + 1 + 0)
#: and room for a burst on one of them, on a laptop.
FARM_MAX_WORKERS = 6

# Pool limits on the farm: the default queue takes bulks of thumbnails; emails are few and
# short, but a user waits for them (never 0 workers); reports are slow, bulk work that
# can wait for a first worker to start (0 when there are none).
_DEFAULT_POOL = (1, 4)
_EMAILS_POOL = (1, 2)
_REPORTS_POOL = (0, 4)


@dataclass(frozen=True, slots=True)
class DemoQueues:
    """The queues the demo's jobs go to.

    Attributes:
        default: ``QUEUE_NAME``: orders, invoices and thumbnails.
        emails: the welcome emails' queue, as ``QUEUE_ROUTES`` gives it (``QUEUE_NAME``
            when they are not routed).
        reports: the reports' queue (``DEMO_REPORTS_QUEUE``).
    """

    default: str
    emails: str
    reports: str

    @classmethod
    def of(cls, queue_settings: QueueSettings, demo_settings: DemoSettings) -> DemoQueues:
        """The queues that these settings send the demo's jobs to."""
        default = queue_settings.name
        emails = queue_settings.routes.queue_of(WELCOME_EMAIL_JOB) or default
        return cls(default=default, emails=emails, reports=demo_settings.reports_queue)

    def names(self) -> tuple[str, ...]:
        """Each queue once: the default, emails, reports."""
        return tuple(dict.fromkeys((self.default, self.emails, self.reports)))

    def farm_pools(self) -> str:
        """``fast-app work --queues`` for a farm serving the demo (with
        ``--max-workers FARM_MAX_WORKERS``): ``async_farm.jobs=1..4,emails=1..2,reports=0..4``.

        A queue that serves two purposes (emails not routed, say) has the first one's limits.
        """
        limits: dict[str, tuple[int, int]] = {}
        for name, pool in (
            (self.default, _DEFAULT_POOL),
            (self.emails, _EMAILS_POOL),
            (self.reports, _REPORTS_POOL),
        ):
            limits.setdefault(name, pool)
        return ",".join(f"{name}={low}..{high}" for name, (low, high) in limits.items())


def use_default_routes(environ: Mapping[str, str] | None = None) -> QueueSettings:
    """Give the queue settings the demo's ``QUEUE_ROUTES`` unless ``environ`` sets it.

    Call it before the first ``queue()``: the demo's entry points (``demo serve``,
    ``demo tour``) do.

    Args:
        environ: where ``QUEUE_ROUTES`` is looked for (default: the process environment).

    Returns:
        The queue settings in use from now on.
    """
    env = os.environ if environ is None else environ
    if "QUEUE_ROUTES" in env:  # set, even empty: the operator's choice
        return get_queue_settings()
    return configure(routes=DEFAULT_ROUTES)


def current_queues() -> DemoQueues:
    """The queues the demo's jobs go to in this process."""
    return DemoQueues.of(get_queue_settings(), get_settings())
