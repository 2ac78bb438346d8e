"""One ``requeue``: publishes each job back to its queue, acks its dead letter once the
broker stored it, and refuses to vouch for jobs nobody signed."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.envelope import encode_envelope
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import trace_headers
from fast_app.farm.dead_letters._broker import TakenDeadLetter
from fast_app.farm.dead_letters.letter import DeadLetter
from fast_app.farm.dead_letters.outcomes import ForcedRequeue, RequeueReport, SkippedDeadLetter
from fast_app.farm.dead_letters.reasons import DeadReason

__all__ = ["Requeuing"]


@dataclass(frozen=True)
class _Refusal:
    """Why a job envelope stays in the dead-letter queue unless forced."""

    skipped: str  # why it stays
    forced: str  # the warning when ``force`` requeues it anyway


_BAD_SIGNATURE = _Refusal(
    "its signature was wrong (requeuing would sign it); --force to requeue anyway",
    "its signature was wrong; it is requeued anyway (signed, if ASYNC_FARM_SIGNING_KEY "
    "is set) and will run",
)
_UNSIGNED = _Refusal(
    "its job was never signed with ASYNC_FARM_SIGNING_KEY: requeuing would sign it; "
    "--force to requeue anyway",
    "its job was never signed with ASYNC_FARM_SIGNING_KEY; it is requeued signed and will "
    "run as if a trusted publisher had queued it",
)


def _refusal(letter: DeadLetter, *, signing: bool) -> _Refusal | None:
    """Why requeuing ``letter``'s job would vouch for what nobody vouched for, if it would."""
    if letter.reason == DeadReason.BAD_SIGNATURE:
        return _BAD_SIGNATURE
    if signing and not letter.job_signed:
        return _UNSIGNED
    return None


class Requeuing:
    """One ``requeue``: publishes jobs, acks their dead letters, and keeps the tally.

    A publisher per jobs queue, opened on its first job: each declares its own queue's
    topology only, as a ``requeue`` of that one queue would.
    """

    def __init__(self, settings: QueueSettings, *, force: bool) -> None:
        self._settings = settings
        self._signing = settings.signing_key is not None
        self._force = force
        self._publishers: dict[str, Publisher] = {}
        self.requeued: dict[str, str] = {}  # job id -> its queue; ordered, quick to search
        self.duplicates: list[str] = []
        self.skipped: list[SkippedDeadLetter] = []
        self.forced: list[ForcedRequeue] = []
        self.unreadable: list[SkippedDeadLetter] = []
        self.found: set[str] = set()

    async def settle(self, taken: TakenDeadLetter) -> None:
        """Requeue the job of a dead letter read, or leave it and say why."""
        letter, envelope, message = taken.letter, taken.envelope, taken.message
        if letter is None or message is None:
            return
        if letter.job_id is not None:
            self.found.add(letter.job_id)
        if letter.job_id in self.requeued:
            # The same job dead-lettered twice (an ack lost on the way): run it once.
            await message.ack()
            self.duplicates.append(letter.job_id)
            return
        if envelope is None:
            self.skipped.append(SkippedDeadLetter(letter.job_id, "not a valid job envelope"))
            return
        refusal = _refusal(letter, signing=self._signing)
        if refusal is not None and not self._force:
            self.skipped.append(SkippedDeadLetter(letter.job_id, refusal.skipped))
            return
        fresh = msgspec.structs.replace(envelope, attempt=1, not_before=None)
        try:
            body = encode_envelope(fresh)
        except Exception as error:  # arguments nested deeper than the encoder goes
            reason = f"cannot be encoded again ({type(error).__name__})"
            self.skipped.append(SkippedDeadLetter(letter.job_id, reason))
            return
        # The requeued run continues the job's trace (its first enqueue's). Trace headers
        # are text; anything else under their names is not worth a failed publish.
        trace = {
            name: value
            for name, value in (trace_headers(message.headers) or {}).items()
            if isinstance(value, str)
        }
        await self._publisher(taken.queue).publish(body, fresh, extra_headers=trace or None)
        await message.ack()  # only now: the broker has stored the new job
        self.requeued[fresh.id] = taken.queue
        if refusal is not None:
            self.forced.append(ForcedRequeue(fresh.id, refusal.forced))

    def _publisher(self, queue: str) -> Publisher:
        publisher = self._publishers.get(queue)
        if publisher is None:
            settings, key = self._settings, self._settings.signing_key
            publisher = self._publishers[queue] = Publisher(
                settings.rabbitmq_url.get_secret_value(),
                redacted_url=settings.redacted_rabbitmq_url,
                topology=Topology.from_settings(settings, queue),
                timeout_s=settings.connect_timeout_s,
                signing_key=None if key is None else key.get_secret_value().encode(),
                connection_name="fast-app dlq requeue",
            )
        return publisher

    async def close(self) -> None:
        """Close the publishers."""
        for publisher in self._publishers.values():
            await publisher.close()

    def not_reached(self, taken: TakenDeadLetter, cut_short_at: int) -> None:
        """Leave a dead letter asked for that can no longer be acknowledged."""
        if taken.letter is not None and taken.letter.job_id is not None:
            self.found.add(taken.letter.job_id)
            reason = f"not requeued: reading stopped at dead letter #{cut_short_at}"
            self.skipped.append(SkippedDeadLetter(taken.letter.job_id, reason))

    def report(self, not_found: tuple[str, ...]) -> RequeueReport:
        """What was done."""
        return RequeueReport(
            requeued=tuple(self.requeued),
            duplicates_removed=tuple(self.duplicates),
            skipped=tuple(self.skipped),
            not_found=not_found,
            forced=tuple(self.forced),
            unreadable=tuple(self.unreadable),
            requeued_to=dict(self.requeued),
        )
