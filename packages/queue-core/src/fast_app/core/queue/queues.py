"""Queue names and routes: which queue a job goes to.

A job goes to the queue its call names (``__queue="reports"``), else to the queue
``QUEUE_ROUTES`` gives its function (the longest matching prefix wins), else to
``QUEUE_NAME``. Each named queue is a RabbitMQ queue of that name, with its own delay
queues (``<name>.delay.*``) and dead letters (``<name>.dead``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["QUEUE_NAME_RULE", "QueueRoutes", "check_queue_name"]

#: What a queue name may hold, as the error messages and the docs say it.
QUEUE_NAME_RULE = "1 to 200 characters among letters, digits and _ . : -"
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}\Z")
# Names of another queue's companions: a job queue of that name would collide with them.
_COMPANION = re.compile(r".*\.(dead|dlx|tombstones|events|control)\Z|.*\.delay\.\d+ms\Z")
_FUNCTION_PREFIX = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*\Z")


def check_queue_name(name: object) -> str:
    """``name`` if it can name a jobs queue.

    Raises:
        ValueError: it is not a string of ``QUEUE_NAME_RULE``, or it is the name of
            another queue's companion (``x.dead``, ``x.delay.200ms``...).
    """
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise ValueError(f"a queue name is {QUEUE_NAME_RULE}, got {name!r}")
    if _COMPANION.match(name):
        raise ValueError(
            f"{name!r} is the name of another queue's companion (dead letters, delays or "
            "farm exchanges end so): choose another queue name"
        )
    return name


@dataclass(frozen=True, slots=True)
class QueueRoutes:
    """Function paths or module prefixes mapped to queues (``QUEUE_ROUTES``).

    Attributes:
        routes: ``(prefix, queue)`` pairs, longest prefix first.
    """

    routes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> QueueRoutes:
        """Routes from ``prefix=queue,prefix=queue`` (spaces ignored, empty = none).

        Raises:
            ValueError: naming the entry that is not ``prefix=queue``, a prefix that is
                not a dotted Python path, a queue name out of rule, or a prefix given twice.
        """
        routes: dict[str, str] = {}
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            prefix, equals, queue = (piece.strip() for piece in entry.partition("="))
            if not equals or not prefix or not queue:
                raise ValueError(f"route {entry!r} is not prefix=queue")
            if not _FUNCTION_PREFIX.match(prefix):
                raise ValueError(
                    f"route {entry!r}: {prefix!r} is not a module or function path "
                    "(dotted Python names, e.g. app.reports or app.mail.send_welcome)"
                )
            if prefix in routes:
                raise ValueError(f"route {entry!r}: {prefix!r} is routed twice")
            routes[prefix] = check_queue_name(queue)
        ordered = sorted(routes.items(), key=lambda route: (-len(route[0]), route[0]))
        return cls(tuple(ordered))

    def queue_of(self, function_path: str) -> str | None:
        """The queue of the longest prefix that ``function_path`` is or starts with (as
        dotted names: ``app.mail`` matches ``app.mail.send`` but not ``app.mailer``)."""
        for prefix, queue in self.routes:
            if function_path == prefix or function_path.startswith(prefix + "."):
                return queue
        return None

    def __str__(self) -> str:
        return ",".join(f"{prefix}={queue}" for prefix, queue in self.routes)
