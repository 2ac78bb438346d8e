"""The worker template ("zygote"): a preloaded process that workers are forked from.

With ``FARM_WORKER_START=template`` (the default), the supervisor runs one template
process: it imports the worker's runtime and the application's modules
(``FARM_IMPORTS``) once, then forks each new worker, which starts consuming without
importing anything anew and shares those pages with its siblings. ``fast-app work``
forks the first template from the supervisor itself, before its event loop starts
(``prefork_template``), so that the supervisor shares those pages too; a restarted one
is a fresh interpreter (``python -m fast_app.farm.template``). See docs/deployment.md,
"Worker start: the preloaded template".

- ``messages``: what the supervisor and the template say (msgspec Structs, strict).
- ``_server``: the template process itself.
- ``_prefork``: the first template, forked from the supervisor, and its handoff.
- ``_process``: a template process, exec'd or forked, as the supervisor holds it.
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
from fast_app.farm.template._prefork import discard_preforked, prefork_template
from fast_app.farm.template.handle import EXIT_UNKNOWN, ForkedWorker, WorkerHandle

__all__ = [
    "EXIT_UNKNOWN",
    "EventRecorder",
    "ForkedWorker",
    "TemplateLink",
    "TemplateState",
    "WorkerHandle",
    "WorkerTemplate",
    "discard_preforked",
    "prefork_template",
    "restart_delay",
]
