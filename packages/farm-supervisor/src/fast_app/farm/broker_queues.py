"""Jobs queues read straight from the broker, whether or not any supervisor is alive.

``fast-app status`` reads the queues that no supervisor it heard serves: a backlog with
no consumer is what an operator most needs to see, and only the broker can show it when
the farm is down. Every figure comes from a passive declare, which creates nothing and
needs no configure permission: a queue that does not exist is reported absent.
``known_queues`` names the queues a farm knows from its settings: what ``status`` and
``top`` read, and what ``dlq`` looks through.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.amqp import DELAY_LEVELS_MS, Topology, install_tolerant_decoding
from fast_app.core.queue.amqp.connecting import connect_first
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.delays import next_due_within_s

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection

    from fast_app.farm.settings import FarmSettings

__all__ = ["QueueReading", "known_queues", "read_queues"]


def known_queues(queue: QueueSettings, farm: FarmSettings) -> tuple[str, ...]:
    """The queues a farm knows, each once: ``QUEUE_NAME`` (the default), the queues of
    ``FARM_QUEUES``, then the targets of ``QUEUE_ROUTES``, in that order.

    What ``fast-app status`` and ``fast-app top`` read from the broker when no supervisor
    serves them, and what ``fast-app dlq`` looks through unless told ``--queue``.

    Args:
        queue: the queue settings (``QUEUE_NAME``, ``QUEUE_ROUTES``).
        farm: the farm settings (``FARM_QUEUES``).
    """
    names = [queue.name, *(pool.queue for pool in farm.queues)]
    names += [target for _, target in queue.routes.routes]
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class QueueReading:
    """One jobs queue as the broker reports it.

    Attributes:
        name: the jobs queue.
        exists: whether it exists; when it does not (never declared, or deleted), its
            figures are ``None``.
        ready: messages waiting for a consumer (``None``: unknown).
        consumers: its consumers, of every supervisor and lone worker (``None``: unknown).
        dead: messages in ``<name>.dead`` (``None``: unknown; 0 when that queue does not
            exist: nothing was ever dead-lettered there).
        delayed: messages in its delay queues together (``None``: unknown).
        read_at: Unix time of the reading.
        next_due_within_s: the next delayed job is due within this many seconds (see
            ``fast_app.farm.delays``); ``None`` when none is delayed, or unknown.
    """

    name: str
    exists: bool
    ready: int | None
    consumers: int | None
    dead: int | None
    delayed: int | None
    read_at: float
    next_due_within_s: float | None = None


async def read_queues(settings: QueueSettings, names: Sequence[str]) -> list[QueueReading]:
    """Read each of ``names`` (jobs queues) by passive declares, on a connection of its own.

    Raises:
        OSError, TimeoutError, ConnectionError: the broker could not be reached.
    """
    install_tolerant_decoding()
    connection = await connect_first(
        settings.rabbitmq_urls,
        timeout_s=settings.connect_timeout_s,
        connection_name="fast-app status",
    )
    try:
        probe = _Probe(connection)
        readings = []
        for name in names:
            topology = Topology.from_settings(settings, name)
            readings.append(await _read(probe, topology))
        await probe.close()
        return readings
    finally:
        await connection.close()


async def _read(probe: _Probe, topology: Topology) -> QueueReading:
    jobs = await probe.counts(topology.jobs)
    read_at = time.time()
    if isinstance(jobs, _Absent):
        return QueueReading(topology.jobs, False, None, None, None, None, read_at)
    ready, consumers = (None, None) if jobs is None else jobs
    dead_counts = await probe.counts(topology.dead)
    dead = _ready_of(dead_counts)
    delayed: int | None = 0
    waiting_by_level: dict[int, int] = {}
    for level in DELAY_LEVELS_MS:
        waiting = _ready_of(await probe.counts(topology.delay_queue(level)))
        # One level unreadable and the sum is unknown.
        delayed = None if delayed is None or waiting is None else delayed + waiting
        waiting_by_level[level] = waiting or 0
    next_due = None if delayed is None else next_due_within_s(waiting_by_level)
    return QueueReading(topology.jobs, True, ready, consumers, dead, delayed, read_at, next_due)


class _Absent:
    """The queue does not exist."""


_ABSENT = _Absent()


def _ready_of(counts: tuple[int, int] | _Absent | None) -> int | None:
    """Messages ready in a companion queue: 0 when it does not exist (nothing ever went
    there), ``None`` when unknown."""
    if isinstance(counts, _Absent):
        return 0
    return None if counts is None else counts[0]


class _Probe:
    """Passive declares on one channel, reopened after each one the broker refused (a
    refusal closes the channel)."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._channel: AbstractChannel | None = None

    async def counts(self, name: str) -> tuple[int, int] | _Absent | None:
        """Messages ready and consumers of queue ``name``; ``_ABSENT`` when it does not
        exist, ``None`` when the broker refused to say (no permission on it)."""
        from aiormq.exceptions import AMQPChannelError, ChannelNotFoundEntity

        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        try:
            declared = await self._channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            self._channel = None
            return _ABSENT
        except AMQPChannelError:  # the connection's own trouble is the caller's
            self._channel = None
            return None
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
