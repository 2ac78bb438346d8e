"""Dead letters: jobs that failed for good, read from ``<queue>.dead``, requeued or purged.

Each jobs queue has its own dead letters; the functions read those of the queues they are
given (``queues=``, default ``QUEUE_NAME``), and a requeued job goes back to its own queue.

The async functions are the API for scripts and the dashboard; ``fast-app dlq``
(``fast_app.farm.cli.dlq``) is their command line. Reading never removes a dead letter:
only ``requeue_dead_letters`` and ``purge_dead_letters`` do.

- ``letter``: the ``DeadLetter`` type; ``reasons``: ``DeadReason``, shared with workers.
- ``api``: the functions; ``outcomes``: what they report; ``filtering``: which dead
  letters an operator means (``DeadLetterFilter``).
- ``_broker``: reading a queue without consuming it; ``_requeuing``: putting jobs back;
  ``_format``: text and JSON views.
"""

from fast_app.farm.dead_letters.api import (
    MIN_PREFIX_LENGTH,
    AmbiguousJobIdError,
    ForcedRequeue,
    OnUnreadable,
    PurgeReport,
    RequeueReport,
    SkippedDeadLetter,
    count_dead_letters,
    find_dead_letter,
    list_dead_letters,
    purge_dead_letters,
    purge_matching_dead_letters,
    requeue_dead_letters,
)
from fast_app.farm.dead_letters.filtering import DeadLetterFilter, parse_query, parse_since
from fast_app.farm.dead_letters.letter import DeadLetter
from fast_app.farm.dead_letters.reasons import DeadReason

__all__ = [
    "MIN_PREFIX_LENGTH",
    "AmbiguousJobIdError",
    "DeadLetter",
    "DeadLetterFilter",
    "DeadReason",
    "ForcedRequeue",
    "OnUnreadable",
    "PurgeReport",
    "RequeueReport",
    "SkippedDeadLetter",
    "count_dead_letters",
    "find_dead_letter",
    "list_dead_letters",
    "parse_query",
    "parse_since",
    "purge_dead_letters",
    "purge_matching_dead_letters",
    "requeue_dead_letters",
]
