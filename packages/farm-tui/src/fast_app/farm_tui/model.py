"""The dashboard's memory of the farm: the latest snapshot of each supervisor, and history.

No I/O and no widgets: snapshots go in (``ingest``), a ``FarmView`` for a given moment
comes out (``view``). Snapshots carry only the last few ended jobs and events; the model
keeps longer lists, so that a failure stays on screen after it left the snapshots.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any

from fast_app.farm_tui.limits import Limits, PendingLimits
from fast_app.farm_tui.rates import RateHistory, farm_rates
from fast_app.farm_tui.view import (
    EndedJob,
    FarmEvent,
    FarmView,
    QueueView,
    SupervisorState,
    SupervisorView,
    is_stale,
    parse_snapshot,
)

__all__ = ["FarmModel"]

_FORGET_AFTER_S = 30.0
_SUCCEEDED_KEPT = 20
_FAILED_KEPT = 50
_EVENTS_KEPT = 500
_DECISIONS_SHOWN = 8


class FarmModel:
    """The latest state of every supervisor heard, with rate, job and event history.

    Args:
        history_points: seconds of rate history the view carries.
        forget_after_s: a supervisor silent this long is dropped (one that says it
            stopped is dropped at once).
    """

    def __init__(self, *, history_points: int = 120, forget_after_s: float = _FORGET_AFTER_S):
        self._supervisors: dict[str, SupervisorState] = {}
        self._history = RateHistory()
        self._history_points = history_points
        self._forget_after_s = forget_after_s
        self._succeeded: collections.deque[EndedJob] = collections.deque(maxlen=_SUCCEEDED_KEPT)
        self._failed: collections.deque[EndedJob] = collections.deque(maxlen=_FAILED_KEPT)
        self._seen_ends: set[str] = set()
        self._events: collections.deque[tuple[int, FarmEvent]] = collections.deque(
            maxlen=_EVENTS_KEPT
        )
        self._event_count = 0
        # Per supervisor: (its start time, the last event sequence number taken).
        self._event_cursors: dict[str, tuple[float, int]] = {}
        self.pending_limits = PendingLimits()
        self.queue_name = "?"

    # -- in --------------------------------------------------------------------------

    def ingest(self, snapshot: Mapping[str, Any]) -> None:
        """Take one snapshot (older than the one held for its supervisor: ignored)."""
        state = parse_snapshot(snapshot)
        held = self._supervisors.get(state.supervisor_id)
        if held is not None and held.at > state.at:
            return
        if state.stopped:
            self._supervisors.pop(state.supervisor_id, None)
        else:
            self._supervisors[state.supervisor_id] = state
        self.queue_name = state.queue_name
        self._take_events(state)
        self._take_ended(state)
        enqueue, completion = farm_rates(s.raw for s in self._supervisors.values())
        self._history.record(state.at, enqueue, completion)

    def _take_events(self, state: SupervisorState) -> None:
        started_at, last = self._event_cursors.get(state.supervisor_id, (state.started_at, 0))
        if started_at != state.started_at:  # restarted under the same id: numbering anew
            last = 0
        for event in state.events:
            if event.seq > last:
                self._event_count += 1
                self._events.append((self._event_count, event))
                last = event.seq
        self._event_cursors[state.supervisor_id] = (state.started_at, last)

    def _take_ended(self, state: SupervisorState) -> None:
        for job in state.ended:
            if job.key in self._seen_ends:
                continue
            self._seen_ends.add(job.key)
            (self._succeeded if job.outcome == "succeeded" else self._failed).append(job)
        if len(self._seen_ends) > 4 * (_SUCCEEDED_KEPT + _FAILED_KEPT):
            self._seen_ends = {job.key for job in (*self._succeeded, *self._failed)}

    def forget_silent(self, now: float) -> None:
        """Drop the supervisors not heard from for a while (they died, or left)."""
        for supervisor_id, state in list(self._supervisors.items()):
            if now - state.at > self._forget_after_s:
                del self._supervisors[supervisor_id]

    # -- out -------------------------------------------------------------------------

    @property
    def supervisor_ids(self) -> list[str]:
        """Ids of the supervisors heard, sorted."""
        return sorted(self._supervisors)

    def supervisor(self, supervisor_id: str) -> SupervisorState | None:
        """The latest state of one supervisor."""
        return self._supervisors.get(supervisor_id)

    def limits(self, supervisor_id: str, now: float) -> Limits | None:
        """The limits to build a change on: asked for and not yet shown, else reported."""
        state = self._supervisors.get(supervisor_id)
        if state is None:
            return None
        reported = Limits(state.min_workers, state.max_workers)
        return self.pending_limits.effective(supervisor_id, reported, now)

    def events_since(self, cursor: int) -> tuple[list[FarmEvent], int]:
        """Events after ``cursor`` (0: all kept), and the cursor to pass next time."""
        new = [event for number, event in self._events if number > cursor]
        return new, self._event_count

    def view(self, now: float) -> FarmView:
        """The farm as the screens show it at Unix time ``now``."""
        states = [self._supervisors[key] for key in sorted(self._supervisors)]
        supervisors = []
        workers = []
        for state in states:
            since = max(0.0, now - state.at)
            limits = self.limits(state.supervisor_id, now) or Limits(0, 0)
            supervisors.append(
                SupervisorView(
                    supervisor_id=state.supervisor_id,
                    host=state.host,
                    uptime_s=max(0.0, now - state.started_at),
                    min_workers=limits.min_workers,
                    max_workers=limits.max_workers,
                    limits_pending=self.pending_limits.is_pending(state.supervisor_id),
                    desired_workers=state.desired_workers,
                    workers=len(state.workers),
                    paused=state.paused,
                    stopping=state.stopping,
                    snapshot_age_s=since,
                    stale=is_stale(since, state.heartbeat_interval_s),
                )
            )
            for worker in state.workers:
                heartbeat_age = worker.heartbeat_age_s + since
                shown = dataclasses.replace(
                    worker, uptime_s=worker.uptime_s + since, heartbeat_age_s=heartbeat_age
                )
                stale = is_stale(
                    heartbeat_age, state.heartbeat_interval_s, starting=worker.state == "starting"
                )
                workers.append((shown, stale))
        enqueue_history, completion_history = self._history.series(now, self._history_points)
        enqueue, completion = self._history.current()
        decisions = sorted(
            (decision for state in states for decision in state.decisions),
            key=lambda decision: decision.at,
            reverse=True,
        )[:_DECISIONS_SHOWN]
        running = sorted(
            (job for state in states for job in state.running), key=lambda job: job.started_at
        )
        recent = sorted((*self._succeeded, *self._failed), key=lambda job: -job.ended_at)
        return FarmView(
            queue_name=self.queue_name,
            supervisors=tuple(supervisors),
            workers=tuple(workers),
            queue=_queue(states),
            enqueue_rate=enqueue,
            completion_rate=completion,
            enqueue_history=tuple(enqueue_history),
            completion_history=tuple(completion_history),
            decisions=tuple(decisions),
            running=tuple(running),
            running_total=sum(state.running_total for state in states),
            recent=tuple(recent),
            paused=bool(states) and all(state.paused for state in states),
            stopping=any(state.stopping for state in states),
        )


def _queue(states: list[SupervisorState]) -> QueueView:
    """The queue's depths: the freshest supervisor's reading; unacked summed over all.

    Ready, delayed, dead and consumers are properties of the shared queues, read by each
    supervisor; the jobs in flight are each supervisor's own.
    """
    if not states:
        return QueueView(None, 0, None, None, None)
    freshest = max(states, key=lambda state: state.at).queue
    return QueueView(
        ready=freshest.ready,
        unacked=sum(state.queue.unacked for state in states),
        delayed=freshest.delayed,
        dead=freshest.dead,
        consumers=freshest.consumers,
    )
