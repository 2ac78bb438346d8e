"""The worker template ("zygote"): a preloaded process that workers are forked from.

With ``FARM_WORKER_START=template`` (the default), the supervisor starts one template
process (``python -m fast_app.farm.template``): it imports the worker's runtime and the
application's modules (``FARM_IMPORTS``) once, then forks each new worker, which starts
consuming without importing anything anew and shares those pages with its siblings.
See docs/deployment.md, "Worker start: the preloaded template".

- ``messages``: what the supervisor and the template say (msgspec Structs, strict).
- ``_server``: the template process itself.
- ``WorkerTemplate``: the supervisor's side (start, spawn, restart).
- ``WorkerHandle`` / ``ForkedWorker``: a worker process, fresh or forked.
"""

from fast_app.farm.template._client import (
    EventRecorder,
    TemplateState,
    WorkerTemplate,
    restart_delay,
)
from fast_app.farm.template._link import TemplateLink
from fast_app.farm.template.handle import EXIT_UNKNOWN, ForkedWorker, WorkerHandle

__all__ = [
    "EXIT_UNKNOWN",
    "EventRecorder",
    "ForkedWorker",
    "TemplateLink",
    "TemplateState",
    "WorkerHandle",
    "WorkerTemplate",
    "restart_delay",
]
