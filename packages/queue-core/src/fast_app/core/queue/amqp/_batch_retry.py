"""The account of a batch: what each publish got, and which jobs to publish again.

A batch (``_batch_publishing``) goes out in rounds. The first publishes every job; each
later one publishes again the jobs the broker did not store but may still store: those it
nacked (RabbitMQ 3.10 nacks publishes to a quorum queue during its leader election), and
those whose channel or connection broke before their confirm arrived, whether they were
stored being unknown. Publishing one of those again may store it twice, which
at-least-once allows; not publishing it again may lose it, which it does not. A returned
(unroutable) job is not published again: it would come back the same way.

``Unconfirmed`` keeps that account from the confirm futures alone, with no broker, so
that it is tested on its own. The rounds stop when no job is left to publish, or when
the publisher's bound runs out; then each job still left fails in its slot, with why.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.errors import QueueError, QueueUnavailableError

if TYPE_CHECKING:
    import aiormq.abc

__all__ = ["AFTER_NACK_S", "Outcome", "Unconfirmed", "broke_link", "outcome_of"]

#: Pause before publishing a nacked job again (a quorum queue's election takes ~0.5 s).
AFTER_NACK_S = 0.2

_NACKED = "the broker answered Basic.Nack (not stored)"
_NOT_SENT = "not sent"


class Outcome(enum.Enum):
    """What a publish's confirm future says about its job."""

    STORED = "stored"
    """The broker confirmed it (Basic.Ack)."""
    RETURNED = "returned"
    """The broker returned it (unroutable): final, publishing it again cannot help."""
    NACKED = "nacked"
    """The broker did not store it (Basic.Nack): publish it again, on a fresh channel."""
    LOST = "lost"
    """Its channel or connection went before the confirm: stored or not, nobody knows."""


def outcome_of(confirm: asyncio.Future[Any]) -> Outcome:
    """What the confirm future of a publish says about its job (``LOST`` while it is
    not done: the batch stops without its answer)."""
    from aiormq.exceptions import DeliveryError, PublishError
    from pamqp.commands import Basic

    if not confirm.done() or confirm.cancelled():
        return Outcome.LOST
    error = confirm.exception()
    if error is None:
        return Outcome.STORED if isinstance(confirm.result(), Basic.Ack) else Outcome.RETURNED
    if isinstance(error, PublishError):
        return Outcome.RETURNED  # a return, from a channel that raises on them
    if isinstance(error, DeliveryError):
        # The broker answered, with a frame other than an ack: a nack is worth another
        # try; anything else is final, as it is for ``Publisher.publish``.
        return Outcome.NACKED if isinstance(error.frame, Basic.Nack) else Outcome.RETURNED
    return Outcome.LOST


def broke_link(error: BaseException) -> bool:
    """Whether ``error`` says that the channel or its connection went, so that what was
    in flight is worth publishing again (on a fresh channel, or the next node that
    accepts), rather than a refusal that another try would only repeat."""
    from aiormq.exceptions import ChannelAccessRefused, ChannelClosed, ChannelInvalidStateError

    if isinstance(error, ChannelAccessRefused):
        return False  # a missing permission: the next channel is refused the same way
    return isinstance(error, ConnectionError | OSError | ChannelInvalidStateError | ChannelClosed)


class Unconfirmed:
    """The account of a batch: each job's slot, and the jobs to publish (again).

    Each round starts with ``start_round``: the jobs to publish in it, in batch order.
    The round reports the jobs it wrote (``published``), each window's confirm futures
    (``note``), and gives back the jobs it did not send (``not_sent``). A stored job's
    slot stays ``None``; a returned one's holds its error at once; the nacked, lost and
    unsent ones make the next round (``pending``), until none is left or the batch stops
    (``fail_left``).

    Args:
        job_ids: the batch's job ids, in order.
        redacted_url: the broker URL without its password, for messages.
        timeout_s: the publisher's bound, for messages.
        describe: an error for a message, without the broker's password.

    Attributes:
        results: one slot per job, as ``Publisher.publish_many`` returns them.
        nacked_on: the channels that nacked a job in this round (to replace).
        lost: how many jobs of this round lost their confirm to a closed channel.
    """

    def __init__(
        self,
        job_ids: Sequence[str],
        *,
        redacted_url: str,
        timeout_s: float,
        describe: Callable[[BaseException], str],
    ) -> None:
        self.results: list[QueueError | None] = [None] * len(job_ids)
        self.nacked_on: list[aiormq.abc.AbstractChannel] = []
        self.lost = 0
        self._job_ids = job_ids
        self._redacted_url = redacted_url
        self._timeout_s = timeout_s
        self._describe = describe
        self._next: list[int] = list(range(len(job_ids)))
        self._publishes: dict[int, int] = {}
        self._why: dict[int, str] = {}  # what the last publish of a job to retry got

    @property
    def pending(self) -> list[int]:
        """The jobs the next round would publish (not in order)."""
        return self._next

    def start_round(self) -> list[int]:
        """The jobs to publish in this round; the next round's list starts empty."""
        this_round, self._next = sorted(self._next), []
        self.nacked_on = []
        self.lost = 0
        return this_round

    def published(self, indexes: Iterable[int]) -> None:
        """``indexes`` were written to the broker in this round."""
        publishes = self._publishes
        for index in indexes:
            publishes[index] = publishes.get(index, 0) + 1

    def not_sent(self, indexes: Iterable[int]) -> None:
        """``indexes`` were not written in this round: send them in the next."""
        self._next.extend(indexes)

    def note(
        self,
        indexes: Sequence[int],
        confirms: Sequence[asyncio.Future[Any]],
        channel: aiormq.abc.AbstractChannel,
    ) -> None:
        """Note what the confirm of each job of ``indexes``, published on ``channel``,
        says (a confirm not done yet counts as lost)."""
        from pamqp.commands import Basic

        ack = Basic.Ack
        why = self._why
        for index, confirm in zip(indexes, confirms, strict=True):
            # Acks first, without the rest of ``outcome_of``: nearly every job's answer.
            if (
                confirm.done()
                and not confirm.cancelled()
                and confirm.exception() is None
                and isinstance(confirm.result(), ack)
            ):
                why.pop(index, None)
                continue
            outcome = outcome_of(confirm)
            if outcome is Outcome.RETURNED:
                why.pop(index, None)
                self.results[index] = QueueUnavailableError(
                    f"the broker at {self._redacted_url} did not take job "
                    f"{self._job_ids[index]}: {self._returned(confirm)}"
                )
                continue
            self._next.append(index)
            if outcome is Outcome.NACKED:
                why[index] = _NACKED
                if not any(nacked is channel for nacked in self.nacked_on):
                    self.nacked_on.append(channel)
            else:
                why[index] = self._lost(confirm)
                self.lost += 1

    def fail_left(self, error: BaseException | None) -> None:
        """The batch stopped, the bound having run out (``error`` is ``None``) or on
        ``error``: each job not stored fails in its slot, with what its last publish got."""
        if error is None:
            stopped = f" within {self._timeout_s:g}s (QUEUE_CONNECT_TIMEOUT_S): "
        else:
            stopped = f": {self._describe(error)}; "
        for index in sorted(self._next):
            publishes = self._publishes.get(index, 0)
            why = self._why.get(index, _NOT_SENT)
            if publishes > 1:
                why = f"{why} (published {publishes} times)"
            self.results[index] = QueueUnavailableError(
                f"the broker at {self._redacted_url} did not take job "
                f"{self._job_ids[index]}{stopped}{why}"
            )

    def _lost(self, confirm: asyncio.Future[Any]) -> str:
        if not confirm.done():
            return "no confirm came"
        if confirm.cancelled():
            return "its publish was cancelled (the channel closed)"
        error = confirm.exception()
        assert error is not None
        return f"the channel closed before its confirm ({self._describe(error)})"

    def _returned(self, confirm: asyncio.Future[Any]) -> str:
        error = confirm.exception()
        if error is not None:
            return self._describe(error)
        return f"the broker answered {_answer(confirm.result())} instead of confirming"


def _answer(confirmation: object) -> str:
    """How to name what the broker answered instead of an ack (a returned message)."""
    delivery = getattr(confirmation, "delivery", None)
    reply = getattr(delivery, "reply_text", None)
    return f"a return ({reply})" if reply else type(confirmation).__name__
