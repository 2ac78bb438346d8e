"""The RabbitMQ queues of a farm, declared the same way by publishers and workers.

For a jobs queue named ``async_farm.jobs``:

- ``async_farm.jobs``: the jobs; dead-letters into the exchange below (quorum queues do
  so after ``x-delivery-limit`` deliveries, against crash loops).
- ``async_farm.jobs.dlx`` (direct exchange) → ``async_farm.jobs.dead``: jobs that failed
  for good or can never run, with the reason in their headers.
- ``async_farm.jobs.tombstones`` (fanout exchange): ids of jobs a supervisor killed at
  their hard timeout; every worker listens, and dead-letters (or retries) such a job when
  the broker hands it out again, instead of running it into the same timeout.
- ``async_farm.jobs.events`` (fanout exchange): supervisors' farm snapshots, for
  ``fast-app status`` and the dashboard.
- ``async_farm.jobs.control`` (direct exchange): commands, each addressed to one
  supervisor by its id (the routing key).
- ``async_farm.jobs.delay.<N>ms``: delayed jobs wait in the queue of the largest level not
  above their remaining delay; its TTL dead-letters them back into the jobs queue, where a
  worker runs them, or sends them to the next level if time remains. Levels double from
  100 ms, so a delay of any length takes a handful of hops, and each level's queue holds
  messages of one TTL only, so none waits behind a later one. No broker plugin needed.

The farm's user declares all of these (``declare``). A *producer* user, which may publish
jobs but not configure the farm's queues (see the permissions recipe in
``docs/security.md``), only checks that they exist (``check_declared``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueSettings, QueueType

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel

__all__ = ["DELAY_LEVELS_MS", "Topology", "delay_level_ms", "explain_mismatch"]

DELAY_LEVELS_MS: tuple[int, ...] = tuple(100 * 2**k for k in range(21))  # 0.1 s … 29 h


def delay_level_ms(remaining_s: float) -> int | None:
    """The delay queue for a job due in ``remaining_s`` seconds; ``None`` when due now.

    The largest level that does not overshoot, so a job never starts early; what is left
    after it is waited out in the following levels.
    """
    remaining_ms = remaining_s * 1000
    chosen = None
    for level in DELAY_LEVELS_MS:
        if level > remaining_ms:
            break
        chosen = level
    return chosen


@dataclass(frozen=True, slots=True)
class Topology:
    """Names and arguments of a farm's queues.

    Attributes:
        jobs: name of the jobs queue.
        queue_type: ``quorum`` or ``classic``, for every queue of the farm.
        delivery_limit: quorum queues dead-letter a job delivered this many times.
        replicas: nodes holding a copy of each quorum queue (``None``: the broker's
            default).
    """

    jobs: str
    queue_type: QueueType
    delivery_limit: int
    replicas: int | None = None

    @classmethod
    def from_settings(cls, settings: QueueSettings, jobs: str | None = None) -> Topology:
        """The topology that ``settings`` describe, for their queue or ``jobs``."""
        return cls(
            settings.name if jobs is None else jobs,
            settings.queue_type,
            settings.delivery_limit,
            settings.replicas,
        )

    @property
    def dead(self) -> str:
        """Queue of dead letters."""
        return f"{self.jobs}.dead"

    @property
    def dead_exchange(self) -> str:
        """Exchange that routes to the dead-letter queue."""
        return f"{self.jobs}.dlx"

    @property
    def tombstones_exchange(self) -> str:
        """Fanout exchange of jobs killed at their hard timeout."""
        return f"{self.jobs}.tombstones"

    @property
    def events_exchange(self) -> str:
        """Fanout exchange of farm snapshots."""
        return f"{self.jobs}.events"

    @property
    def control_exchange(self) -> str:
        """Direct exchange of commands to supervisors (routing key: supervisor id)."""
        return f"{self.jobs}.control"

    def delay_queue(self, level_ms: int) -> str:
        """Queue holding jobs for ``level_ms`` milliseconds."""
        return f"{self.jobs}.delay.{level_ms}ms"

    def _typed(self, arguments: dict[str, object]) -> dict[str, object]:
        arguments["x-queue-type"] = self.queue_type
        if self.queue_type == "quorum":
            # Quorum queues dead-letter at-most-once unless told otherwise; at-least-once
            # needs the reject-publish overflow mode.
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
            if self.replicas is not None:
                arguments["x-quorum-initial-group-size"] = self.replicas
        return arguments

    def jobs_arguments(self) -> dict[str, object]:
        """Arguments of the jobs queue."""
        arguments: dict[str, object] = {
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.jobs,
        }
        if self.queue_type == "quorum":
            arguments["x-delivery-limit"] = self.delivery_limit
        return self._typed(arguments)

    def dead_arguments(self) -> dict[str, object]:
        """Arguments of the dead-letter queue."""
        arguments: dict[str, object] = {"x-queue-type": self.queue_type}
        if self.queue_type == "quorum" and self.replicas is not None:
            arguments["x-quorum-initial-group-size"] = self.replicas
        return arguments

    def delay_arguments(self, level_ms: int) -> dict[str, object]:
        """Arguments of the delay queue of ``level_ms``."""
        return self._typed(
            {
                "x-message-ttl": level_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.jobs,
            }
        )

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare the jobs queue and the dead letters (idempotent).

        Raises:
            QueueConfigurationError: a queue exists with other arguments (naming them).
        """
        from aiormq.exceptions import ChannelPreconditionFailed

        try:
            await self._declare(channel)
        except ChannelPreconditionFailed as error:
            raise QueueConfigurationError(explain_mismatch(self, str(error))) from None

    async def check_declared(self, channel: AbstractChannel) -> None:
        """Check that the jobs queue and the dead letters' exchange exist, declaring nothing.

        For a user that may not configure them: a passive declare needs no permission.
        The dead letters' exchange is checked too because the jobs queue hands its dead
        letters to it, and the broker drops them silently when it is missing.

        Raises:
            QueueConfigurationError: one of them is missing (the message says who can
                declare it).
        """
        from aiormq.exceptions import ChannelNotFoundEntity

        try:
            await channel.declare_queue(self.jobs, passive=True)
            await channel.declare_exchange(self.dead_exchange, passive=True)
        except ChannelNotFoundEntity as error:
            raise QueueConfigurationError(
                f"the queues of {self.jobs!r} are not declared (broker: {error}) and the "
                "user of RABBITMQ_URL may not declare them: start the farm (`fast-app "
                "work`) once to declare them, or give this user configure permission on them"
            ) from None

    async def _declare(self, channel: AbstractChannel) -> None:
        from aio_pika import ExchangeType

        await channel.declare_queue(self.jobs, durable=True, arguments=self.jobs_arguments())  # type: ignore[arg-type]
        exchange = await channel.declare_exchange(
            self.dead_exchange, ExchangeType.DIRECT, durable=True
        )
        dead = await channel.declare_queue(self.dead, durable=True, arguments=self.dead_arguments())  # type: ignore[arg-type]
        await dead.bind(exchange, routing_key=self.jobs)
        for name, kind in (
            (self.tombstones_exchange, ExchangeType.FANOUT),
            (self.events_exchange, ExchangeType.FANOUT),
            (self.control_exchange, ExchangeType.DIRECT),
        ):
            await channel.declare_exchange(name, kind, durable=True)

    async def declare_delay(self, channel: AbstractChannel, level_ms: int) -> None:
        """Declare the delay queue of ``level_ms`` (idempotent)."""
        await channel.declare_queue(
            self.delay_queue(level_ms),
            durable=True,
            arguments=self.delay_arguments(level_ms),  # type: ignore[arg-type]
        )


# The settings behind the queue arguments we declare; others come from elsewhere.
_ARGUMENT_SETTINGS = {
    "x-queue-type": "QUEUE_TYPE",
    "x-delivery-limit": "QUEUE_DELIVERY_LIMIT",
    "x-quorum-initial-group-size": "QUEUE_REPLICAS",
    # Only quorum queues get these, and RabbitMQ may report them before x-queue-type:
    # over a queue of the other type, they are what differs first.
    "x-overflow": "QUEUE_TYPE (only quorum queues get it)",
    "x-dead-letter-strategy": "QUEUE_TYPE (only quorum queues get it)",
}
_INEQUIVALENT_ARGUMENT = re.compile(r"inequivalent arg '([^']+)'")


def explain_mismatch(topology: Topology, broker_message: str) -> str:
    """A clear message for a queue that exists with other arguments than we declare.

    ``broker_message`` is the broker's ``PRECONDITION_FAILED`` text, e.g. ``inequivalent
    arg 'x-delivery-limit' for queue 'jobs' in vhost '/': received '5' but current is
    '20'``: the message names the setting behind that argument when there is one.
    """
    found = _INEQUIVALENT_ARGUMENT.search(broker_message)
    argument = found.group(1) if found else None
    setting = _ARGUMENT_SETTINGS.get(argument or "")
    if setting is not None:
        cause = f"its {argument} differs from what {setting} asks for"
    elif argument is not None:
        cause = f"its {argument} differs from what this version of fast-app declares"
    else:
        cause = "its arguments differ from what fast-app declares"
    return (
        f"queue {topology.jobs!r} (or one of its companion queues) already exists and "
        f"{cause} (broker: {broker_message}); queue arguments cannot change after the "
        "first declare: use another QUEUE_NAME, or delete the old queues once drained"
    )
