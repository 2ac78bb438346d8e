"""The account of a ``publish_many`` batch (``_batch_retry``): what each confirm says, which
jobs are published again, and why the ones left failed. No broker: confirm futures only.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelClosed,
    ChannelInvalidStateError,
    ConnectionClosed,
    DeliveryError,
)
from pamqp.commands import Basic

from fast_app.core.queue import QueueUnavailableError
from fast_app.core.queue.amqp._batch_retry import Outcome, Unconfirmed, broke_link, outcome_of
from fast_app.core.queue.broker_urls import describe_error, redact_url

URL = "amqp://app:s3cret-pw@rabbit-1:5672/,amqp://app:s3cret-pw@rabbit-2:5672/"
CHANNEL = object()  # a channel, as far as the account knows one: by its identity


def an_account(count: int) -> Unconfirmed:
    return Unconfirmed(
        [f"job-{index}" for index in range(count)],
        redacted_url=redact_url(URL),
        timeout_s=1.0,
        describe=lambda error: describe_error(error, URL),
    )


def acked() -> asyncio.Future[Any]:
    return _done(result=Basic.Ack(delivery_tag=1))


def returned() -> asyncio.Future[Any]:
    # aiormq's confirm result for a returned (unroutable) message: the message itself.
    delivery = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="q")
    return _done(result=SimpleNamespace(delivery=delivery))


def nacked() -> asyncio.Future[Any]:
    return _done(error=DeliveryError(None, Basic.Nack(delivery_tag=1)))


def lost(error: Exception | None = None) -> asyncio.Future[Any]:
    return _done(error=error or ConnectionError("the channel closed"))


def cancelled() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.cancel()
    return future


def _done(*, result: Any = None, error: Exception | None = None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future


async def test_each_kind_of_answer_has_its_outcome() -> None:
    pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    assert outcome_of(acked()) is Outcome.STORED
    assert outcome_of(returned()) is Outcome.RETURNED
    assert outcome_of(nacked()) is Outcome.NACKED
    assert outcome_of(lost()) is Outcome.LOST
    assert outcome_of(lost(ConnectionClosed(320, "CONNECTION_FORCED"))) is Outcome.LOST
    assert outcome_of(cancelled()) is Outcome.LOST
    # A confirm not come when the batch stops: its job may or may not be stored.
    assert outcome_of(pending) is Outcome.LOST
    pending.cancel()


@pytest.mark.parametrize(
    ("error", "broke"),
    [
        (ConnectionError("reset by peer"), True),
        (ConnectionClosed(320, "CONNECTION_FORCED"), True),
        (OSError("broken pipe"), True),
        (ChannelInvalidStateError("closed"), True),
        (ChannelClosed(406, "PRECONDITION_FAILED"), True),
        (ChannelAccessRefused(403, "ACCESS_REFUSED"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_a_channel_or_connection_that_went_is_worth_another_round(
    error: Exception, broke: bool
) -> None:
    assert broke_link(error) is broke


async def test_a_round_settles_acks_and_returns_and_keeps_nacks_and_losses_for_the_next() -> None:
    # Given a batch of six jobs, all published in the first round
    account = an_account(6)
    first_round = account.start_round()
    assert first_round == [0, 1, 2, 3, 4, 5]
    account.published(first_round)

    # When their confirms say: ack, return, nack, lost, cancelled, ack
    account.note(
        first_round, [acked(), returned(), nacked(), lost(), cancelled(), acked()], CHANNEL
    )

    # Then the acked jobs' slots are empty, the returned one's fails at once (final)
    results = account.results
    assert results[0] is None and results[5] is None
    assert isinstance(results[1], QueueUnavailableError)
    assert "job-1" in str(results[1]) and "a return (NO_ROUTE)" in str(results[1])
    # And the nacked and lost ones make the next round, their slots still empty
    assert sorted(account.pending) == [2, 3, 4]
    assert results[2] is None and results[3] is None and results[4] is None
    # And the channel that nacked is to be replaced; two jobs lost their confirm
    assert account.nacked_on == [CHANNEL]
    assert account.lost == 2


async def test_the_next_round_publishes_the_jobs_left_and_the_unsent_ones_in_batch_order() -> None:
    # Given a round that sent two windows of a batch of six before its channel broke
    account = an_account(6)
    indexes = account.start_round()
    account.published(indexes[:4])
    account.note(indexes[:2], [lost(), acked()], CHANNEL)
    account.note(indexes[2:4], [acked(), nacked()], CHANNEL)
    account.not_sent(indexes[4:])

    # When the next round starts
    second_round = account.start_round()

    # Then it publishes the lost, the nacked and the unsent jobs, in batch order
    assert second_round == [0, 3, 4, 5]
    # And its own account of nacks and losses starts afresh
    assert (account.nacked_on, account.lost, account.pending) == ([], 0, [])

    # When they are all stored, then nothing is left and every slot is empty
    account.published(second_round)
    account.note(second_round, [acked(), acked(), acked(), acked()], CHANNEL)
    assert account.pending == []
    assert account.results == [None] * 6


async def test_jobs_left_when_the_bound_runs_out_fail_with_what_their_last_publish_got() -> None:
    # Given a batch whose job 0 was nacked twice, job 1 lost with its connection, job 2
    # never sent, and job 3 stored
    account = an_account(4)
    for _ in range(2):
        indexes = account.start_round()
        account.published([0])
        account.note([0], [nacked()], CHANNEL)
        account.not_sent(index for index in indexes if index != 0)
    indexes = account.start_round()
    account.published([1, 3])
    account.note([1, 3], [lost(ConnectionClosed(320, "CONNECTION_FORCED")), acked()], CHANNEL)
    account.not_sent([0, 2])

    # When the bound runs out
    account.fail_left(None)

    # Then each job left fails in its slot: the bound, and what its last publish got
    nacked_twice, lost_once, never_sent, stored = account.results
    assert stored is None
    for index, error in enumerate((nacked_twice, lost_once, never_sent)):
        assert isinstance(error, QueueUnavailableError)
        assert str(error).startswith(
            f"the broker at amqp://app:***@rabbit-1:5672/,amqp://app:***@rabbit-2:5672/ "
            f"did not take job job-{index} within 1s (QUEUE_CONNECT_TIMEOUT_S): "
        )
    assert str(nacked_twice).endswith("Basic.Nack (not stored) (published 2 times)")
    assert "the channel closed before its confirm (ConnectionClosed" in str(lost_once)
    assert str(never_sent).endswith(": not sent")


async def test_a_batch_stopped_by_an_error_names_it_without_the_password() -> None:
    # Given a batch whose first round lost its confirms
    account = an_account(2)
    indexes = account.start_round()
    account.published(indexes)
    account.note(indexes, [lost(), lost()], CHANNEL)

    # When reconnecting fails, the error naming a node with its password
    account.fail_left(ConnectionError("cannot reach amqp://app:s3cret-pw@rabbit-2:5672/"))

    # Then both slots say so, the password hidden
    for error in account.results:
        assert isinstance(error, QueueUnavailableError)
        message = str(error)
        assert "ConnectionError: cannot reach amqp://app:***@rabbit-2:5672/" in message
        assert "the channel closed before its confirm" in message
        assert "s3cret-pw" not in message


async def test_a_job_whose_confirm_has_not_come_when_the_bound_runs_out_fails_saying_so() -> None:
    # Given a round stopped by the bound with a job's confirm still to come
    account = an_account(2)
    indexes = account.start_round()
    account.published(indexes)
    waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    account.note(indexes, [acked(), waiting], CHANNEL)

    # When the batch reports the jobs left
    account.fail_left(None)

    # Then that job fails in its slot: no confirm came (it may be stored: unknown)
    stored, unconfirmed = account.results
    assert stored is None
    assert str(unconfirmed).endswith(
        "did not take job job-1 within 1s (QUEUE_CONNECT_TIMEOUT_S): no confirm came"
    )
    waiting.cancel()
