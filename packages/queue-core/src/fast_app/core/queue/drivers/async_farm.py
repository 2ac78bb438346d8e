"""The ``async_farm`` driver: publishes each job to RabbitMQ for worker processes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.amqp.publisher import CONFIRM_WINDOW, OutgoingJob
from fast_app.core.queue.drivers.base import Submission
from fast_app.core.queue.errors import QueueError
from fast_app.core.queue.handle import Job
from fast_app.core.queue.settings import QueueSettings

__all__ = ["AsyncFarmDriver"]


class AsyncFarmDriver:
    """Publishes jobs with confirms; ``queue()`` returns once the broker stored the job.

    One publisher (one connection) per event loop of the process: an asyncio connection
    belongs to the loop that opened it, and tests or scripts may run several loops one
    after the other.
    """

    name = "async_farm"
    runs_in_process = False

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._topology = Topology.from_settings(settings)
        self._topologies: dict[str, Topology] = {settings.name: self._topology}
        key = settings.signing_key
        self._signing_key = None if key is None else key.get_secret_value().encode()
        self._publisher: Publisher | None = None

    def publisher(self) -> Publisher:
        """The publisher of the running event loop, created on first use."""
        publisher = self._publisher
        if publisher is None or publisher.loop is not asyncio.get_running_loop():
            publisher = self._publisher = Publisher(
                self._settings.rabbitmq_url.get_secret_value(),
                redacted_url=self._settings.redacted_rabbitmq_url,
                topology=self._topology,
                timeout_s=self._settings.connect_timeout_s,
                signing_key=self._signing_key,
            )
        return publisher

    async def submit(self, submission: Submission) -> Job:
        """Publish the job and wait for the broker's confirm.

        Raises:
            QueueUnavailableError: the broker did not take the job in time.
        """
        topology = self._topology_of(submission.queue)
        await self.publisher().publish(
            submission.body, submission.envelope, extra_headers=submission.headers, queue=topology
        )
        envelope = submission.envelope
        return Job(envelope.id, envelope.function, self.name, queue=topology.jobs)

    async def submit_many(
        self, submissions: Sequence[Submission], *, window: int = CONFIRM_WINDOW
    ) -> list[Job | QueueError]:
        """Publish the jobs with pipelined confirms; each one's handle, or why it is not
        stored.

        Raises:
            QueueUnavailableError: the broker could not be reached; nothing was published.
            QueueConfigurationError: a queue of the batch cannot be used as configured.
        """
        topologies = [self._topology_of(submission.queue) for submission in submissions]
        failures = await self.publisher().publish_many(
            [
                OutgoingJob(submission.body, submission.envelope, submission.headers, topology)
                for submission, topology in zip(submissions, topologies, strict=True)
            ],
            window=window,
        )
        name = self.name
        return [
            Job(submission.envelope.id, submission.envelope.function, name, queue=topology.jobs)
            if failure is None
            else failure
            for submission, topology, failure in zip(submissions, topologies, failures, strict=True)
        ]

    def _topology_of(self, queue: str | None) -> Topology:
        """The topology of a named queue (the default one for ``None``): same type,
        delivery limit and replicas as the default queue's."""
        if queue is None:
            return self._topology
        topology = self._topologies.get(queue)
        if topology is None:
            default = self._topology
            topology = dataclasses.replace(default, jobs=queue)
            self._topologies[queue] = topology
        return topology

    async def close(self) -> None:
        """Close the connection of the running loop's publisher."""
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None
