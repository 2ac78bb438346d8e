"""The hook interface: what cross-cutting code (telemetry, statistics, your own) can
watch along a job's life, and the objects it is handed.

A hook subclasses ``Hook`` and overrides the methods it needs; every method of the base
class does nothing. The enqueue side runs in the process that calls ``queue()``; the run
side runs where the job runs (a worker, or in-process with the sync driver).

Order along one enqueue: ``before_enqueue``, ``job_prepared`` (once the call is a valid,
encoded job), ``after_enqueue`` (always, with the error if ``queue()`` raises). Each job of
a ``queue_many()`` batch has its own three events (``call.in_batch`` is true); with the
``async_farm`` driver every job's ``before_enqueue`` and ``job_prepared`` come first, then
their ``after_enqueue`` once the batch is confirmed, so a hook must not leave anything
current (an OpenTelemetry context attached) from one event to the next.

Order along one delivery: ``delivered``, then either ``refused`` (it will not run) or
``before_run`` → ``after_run`` (or ``hard_timeout`` / ``cancelled`` if the code did not
end), then ``before_retry`` → ``retried`` or ``dead_lettered`` when the run failed, and
``settled`` last, exactly once, whatever happened. A job a supervisor killed at its
hard timeout comes back as a delivery that goes ``delivered`` → ``hard_timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from fast_app.core.queue.envelope import JobEnvelope
    from fast_app.core.queue.handle import Job, JobOutcome
    from fast_app.core.queue.settings import QueueSettings

__all__ = ["Enqueueing", "Hook", "JobRun"]


class Enqueueing:
    """One ``queue()`` call, as hooks see it.

    Attributes:
        settings: the queue settings in force for the call.
        queue: the queue the job goes to (``QUEUE_NAME`` until the call is prepared,
            then the queue it names or its route gives).
        system: ``rabbitmq`` (published to the broker) or ``fast_app.sync`` (run in-process).
        envelope: the job, once ``queue()`` validated and encoded it (``None`` before).
        hook_state: room for hooks to keep what they need between their calls, keyed by
            the hook itself (``call.hook_state[self] = ...``).
        in_batch: the job is one of a ``queue_many()`` batch (its events may interleave
            with the other jobs' events).
    """

    __slots__ = ("envelope", "hook_state", "in_batch", "queue", "settings", "system")

    def __init__(
        self, settings: QueueSettings, queue: str, system: str, in_batch: bool = False
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.system = system
        self.in_batch = in_batch
        self.envelope: JobEnvelope | None = None
        self.hook_state: dict[object, Any] = {}


class JobRun:
    """One delivery of a job, from its receipt to its settlement, as hooks see it.

    Attributes:
        settings: the queue settings of the process running it.
        queue: the queue it was delivered from.
        system: ``rabbitmq`` on workers, ``fast_app.sync`` in-process.
        envelope: the decoded job; ``None`` for a delivery that is not one.
        message_id: the job id (the message's own, when it could not be decoded).
        headers: the message headers (trace context travels there).
        delivery_count: the broker's count of earlier deliveries, when it sent one.
        worker_id: the worker handling it (``None`` in-process).
        trace_context: the OpenTelemetry context the job's code runs in; a hook may set
            it in ``delivered`` (the telemetry hook does, to parent the job's spans).
        outcome: how the job's code ended, once it has (set before ``after_run``).
        hook_state: room for hooks to keep what they need between their calls, keyed by
            the hook itself.
    """

    __slots__ = (
        "delivery_count",
        "envelope",
        "headers",
        "hook_state",
        "message_id",
        "outcome",
        "queue",
        "settings",
        "system",
        "trace_context",
        "worker_id",
    )

    # Positional parameters: this is built for every delivery, and keyword arguments
    # cost more than all the rest of it.
    def __init__(
        self,
        settings: QueueSettings,
        queue: str,
        system: str,
        envelope: JobEnvelope | None,
        message_id: str | None,
        headers: Mapping[str, Any] | None,
        delivery_count: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.system = system
        self.envelope = envelope
        self.message_id = message_id
        self.headers = headers
        self.delivery_count = delivery_count
        self.worker_id = worker_id
        self.trace_context: Context | None = None
        self.outcome: JobOutcome | None = None
        self.hook_state: dict[object, Any] = {}

    @property
    def due_at(self) -> float | None:
        """Unix time the job became due (enqueued, or its delay or backoff over)."""
        envelope = self.envelope
        return None if envelope is None else envelope.not_before or envelope.enqueued_at


class Hook:
    """Base class of hooks: override the methods you need; each one here does nothing.

    Register an instance with ``fast_app.core.queue.hooks.add_hook`` (on workers, from a
    module listed in ``FARM_IMPORTS``). Hooks run on the job's path: keep them quick and
    non-blocking. An exception a hook raises is logged (once per hook and method) and
    ignored; it never fails the job or loses its delivery.
    """

    # -- enqueue -----------------------------------------------------------------------

    def before_enqueue(self, call: Enqueueing) -> None:
        """``queue()`` was called; the call is not validated yet."""

    def job_prepared(self, call: Enqueueing, headers: dict[str, str]) -> None:
        """The call is a valid job (``call.envelope``); add message headers to ``headers``."""

    def after_enqueue(self, call: Enqueueing, job: Job | None, error: BaseException | None) -> None:
        """The driver took the job (``job``), or ``queue()`` is raising ``error``."""

    # -- run ---------------------------------------------------------------------------

    def delivered(self, run: JobRun) -> None:
        """A delivery is due and about to be checked and run."""

    def refused(self, run: JobRun, reason: str, description: str) -> None:
        """The delivery will not run: not a valid job, a bad signature, a function not allowed."""

    def before_run(self, run: JobRun) -> None:
        """The job's code starts now."""

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        """The job's code ended with ``outcome`` (also in ``run.outcome``)."""

    def hard_timeout(self, run: JobRun, description: str) -> None:
        """The job passed its hard timeout: its worker ends, or was killed by its supervisor."""

    def consumer_timeout(self, run: JobRun, description: str) -> None:
        """The broker took the delivery back for outliving its ``consumer_timeout``."""

    def before_retry(self, run: JobRun, headers: dict[str, str]) -> None:
        """A retry of the job is about to be published; add message headers to ``headers``."""

    def retried(self, run: JobRun) -> None:
        """A retry of the job was published (it runs again after its backoff)."""

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        """The delivery was stored in the dead-letter queue, for ``reason``."""

    def cancelled(self, run: JobRun) -> None:
        """The run was abandoned (shutdown, lost connection); the broker delivers it again."""

    def settled(self, run: JobRun) -> None:
        """The delivery is handled; the last call for this run."""
