"""Other supervisors' jobs in flight, from their snapshots: counted while fresh, then not."""

from __future__ import annotations

import msgspec
import pytest
from farm_messages import snapshot, worker_entry

from fast_app.farm.messages import decode_snapshot, encode_snapshot
from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures
from fast_app.farm.supervisor._peers import MAX_PEERS, PeerLoads
from fast_app.farm.supervisor.balancing import BalanceMemory, BalancePolicy, QueueLimits, balance
from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide


def test_peers_jobs_in_flight_are_summed_and_own_snapshots_ignored() -> None:
    peers = PeerLoads("me")

    peers.heard(snapshot("me", 16, 16), now=10.0)
    peers.heard(snapshot("host-b", 16, 3), now=10.0)
    peers.heard(snapshot("host-c", 5), now=10.5)

    assert peers.in_flight(now=11.0, max_age_s=3.0) == 24


def test_the_latest_snapshot_of_a_peer_replaces_its_earlier_one() -> None:
    peers = PeerLoads("me")

    peers.heard(snapshot("host-b", 16, 16), now=10.0)
    peers.heard(snapshot("host-b", 2), now=11.0)

    assert peers.in_flight(now=11.0, max_age_s=3.0) == 2


def test_a_silent_or_stopped_peer_no_longer_counts() -> None:
    peers = PeerLoads("me")
    peers.heard(snapshot("silent", 16), now=10.0)
    peers.heard(snapshot("leaving", 8), now=12.0)

    peers.heard(snapshot("leaving", 0, stopped=True), now=12.5)

    assert peers.in_flight(now=13.5, max_age_s=3.0) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "other"}',
        b'{"type": "snapshot", "supervisor_id": "b", "workers": [{"in_flight_count": "x"}]}',
        encode_snapshot(snapshot("b", 3)).replace(b'"in_flight_count":3', b'"in_flight_count":-4'),
        encode_snapshot(snapshot("b\u0000c", 3)),
    ],
)
def test_garbage_on_the_events_exchange_does_not_decode(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_snapshot(body)


def test_a_snapshot_cannot_claim_more_jobs_than_its_workers_hold() -> None:
    peers = PeerLoads("me")

    peers.heard(snapshot("forger", 1_000_000, concurrency=16), now=1.0)

    assert peers.in_flight(now=1.0, max_age_s=3.0) == 16


def test_a_backlog_another_host_cannot_take_makes_this_one_scale_up() -> None:
    # Given another host whose 2 workers are full (32 jobs in flight) and 40 jobs ready.
    policy = ScalingPolicy(
        min_workers=1,
        max_workers=4,
        concurrency=16,
        scale_up_step=2,
        scale_down_step=1,
        cooldown_s=30,
        target_drain_s=5,
    )

    def load(unacked: int) -> FarmLoad:
        return FarmLoad(
            now=100.0,
            ready=40,
            unacked=unacked,
            own_workers=1,
            busy_workers=0,
            in_flight=0,
            total_consumers=3,
            jobs_per_second_per_worker=None,
        )

    # When only this supervisor's own (empty) slots are counted, the 48 slots look free.
    blind = decide(policy, load(unacked=0), ScalingMemory())
    # When the peer's 32 jobs in flight are counted, only 16 slots are free for 40 jobs.
    seeing = decide(policy, load(unacked=32), ScalingMemory())

    assert blind.desired_workers == 1
    assert seeing.desired_workers > 1, seeing.reason


def queue_entry(name: str, completion_rate: float) -> QueueEntry:
    figures = QueueFigures(ready=0, unacked=0, consumers=1, dead=0, delayed=0)
    return QueueEntry(name, 0, 8, 1, 1, figures, completion_rate, completion_rate)


def test_a_peer_at_every_bound_moves_workers_only_within_the_caps() -> None:
    # Given a peer claiming, within every bound, 2**53 jobs in flight on queue a (its one
    # worker "holds" them: it claims a concurrency of 2**53) and 1e9 jobs/s ended there
    huge = 2**53
    forged = snapshot(
        "forger",
        concurrency=huge,
        workers=[worker_entry("forger-w0", huge, queue="a")],
        queues=[queue_entry("a", completion_rate=1e9), queue_entry("b", completion_rate=1e9)],
    )
    peers = PeerLoads("me")
    peers.heard(decode_snapshot(encode_snapshot(forged)), now=1.0)
    claimed = peers.in_flight(now=1.0, max_age_s=3.0, queue="a")
    assert (claimed, peers.completion_rate(now=1.0, max_age_s=3.0, queue="a")) == (huge, 1e9)

    # When this supervisor of queues a (1 job ready) and b (40 ready, its real backlog)
    # balances at most 2 workers, whatever it runs now
    policy = BalancePolicy(
        max_workers=2, queues={"a": QueueLimits(0, 2), "b": QueueLimits(0, 2)}, concurrency=16
    )
    for own_a, own_b in ((0, 0), (1, 1), (2, 0), (0, 2)):
        loads = {
            "a": FarmLoad(100.0, 1, claimed, own_a, 0, 0, own_a, None),
            "b": FarmLoad(100.0, 40, 0, own_b, own_b, own_b * 16, own_b, 2.0),
        }
        desired = balance(policy, loads, BalanceMemory()).desired

        # Then the claim draws a worker to a, never past the cap, and b's backlog keeps
        # one: a peer's figures (only its jobs in flight count; its pace feeds no
        # decision) cannot scale a waiting backlog to zero
        assert sum(desired.values()) <= 2
        assert desired["b"] >= 1, (own_a, own_b, desired)


def test_the_peers_of_a_queue_are_counted_while_fresh() -> None:
    peers = PeerLoads("me")
    peers.heard(snapshot("me", 1), now=10.0)
    peers.heard(snapshot("host-b", 1), now=10.0)
    peers.heard(snapshot("host-c", 1), now=10.5)
    peers.heard(snapshot("gone", 1), now=5.0)

    assert peers.supervisors(now=11.0, max_age_s=3.0, queue="q") == 2
    assert peers.supervisors(now=11.0, max_age_s=3.0, queue="other") == 0


def test_a_flood_of_forged_peers_stops_at_the_cap() -> None:
    peers = PeerLoads("me", max_age_s=3.0)
    for number in range(MAX_PEERS + 500):
        peers.heard(snapshot(f"forged-{number}", 1), now=1.0)

    assert peers.supervisors(now=1.0, max_age_s=3.0, queue="q") == MAX_PEERS
    # Once the forgeries fall silent, a real peer finds room again
    peers.heard(snapshot("host-b", 1), now=10.0)
    assert peers.supervisors(now=10.0, max_age_s=3.0, queue="q") == 1


def test_deliveries_waiting_in_peers_workers_are_counted_per_queue_and_capped() -> None:
    peers = PeerLoads("me")
    held = snapshot("host-b", 4, 4, waiting={"host-b-w0": 120, "host-b-w1": 7})
    forged = snapshot("forger", 4, waiting={"forger-w0": 4_000_000, "nobody": 9})

    peers.heard(held, now=10.0)
    peers.heard(forged, now=10.0)

    # A worker cannot hold more than its prefetch count, an AMQP short; a count for a
    # worker the snapshot does not describe counts for nothing.
    assert peers.waiting(now=11.0, max_age_s=3.0, queue="q") == 127 + 65_535
    assert peers.waiting(now=20.0, max_age_s=3.0, queue="q") == 0
