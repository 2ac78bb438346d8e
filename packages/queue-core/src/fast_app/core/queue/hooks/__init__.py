"""Hooks: cross-cutting work along a job's life (tracing, metrics, statistics, yours).

::

    from fast_app.core.queue.hooks import Hook, JobRun, add_hook

    class SlowJobs(Hook):
        def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
            if outcome.duration_s > 10:
                log.warning("slow job %s", run.message_id)

    add_hook(SlowJobs())

See ``Hook`` for the events and their order, and docs/hooks.md.
"""

from .base import Enqueueing, Hook, JobRun
from .chain import HookChain
from .registry import HookSelection, add_hook, current_hooks, installed_hooks, remove_hook

__all__ = [
    "Enqueueing",
    "Hook",
    "HookChain",
    "HookSelection",
    "JobRun",
    "add_hook",
    "current_hooks",
    "installed_hooks",
    "remove_hook",
]
