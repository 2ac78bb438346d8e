"""Other supervisors' jobs in flight, from their snapshots: counted while fresh, then not."""

from __future__ import annotations

import msgspec
import pytest
from farm_messages import snapshot

from fast_app.farm.messages import decode_snapshot, encode_snapshot
from fast_app.farm.supervisor._peers import PeerLoads
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
