"""The dashboard's memory of the farm: the latest snapshot of each supervisor, and history.

No I/O and no widgets: snapshots go in (``ingest``), a ``FarmView`` for a given moment
comes out (``view``). Snapshots carry only the last few ended jobs and events; the model
keeps longer lists, so that a failure stays on screen after it left the snapshots, and the
history of the farm's rates and of each queue's backlog.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from fast_app.farm.broker_queues import QueueReading
from fast_app.farm_tui.limits import Limits, PendingLimits
from fast_app.farm_tui.parsing import parse_snapshot
from fast_app.farm_tui.queues import (
    backlog,
    broker_queue,
    merge_queue,
    queue_names,
    unconsumed_backlog,
)
from fast_app.farm_tui.rates import RateHistory, SecondSeries
from fast_app.farm_tui.view import (
    EndedJob,
    FarmEvent,
    FarmView,
    NamedQueueView,
    QueueReport,
    QueueView,
    SupervisorState,
    SupervisorView,
    is_stale,
)

__all__ = ["FarmModel"]

_FORGET_AFTER_S = 30.0
_SUCCEEDED_KEPT = 20
_FAILED_KEPT = 50
_EVENTS_KEPT = 500
_DECISIONS_SHOWN = 8
_STALE_INTERVALS = 3.0  # as ``view.is_stale``


class FarmModel:
    """The latest state of every supervisor heard, with rate, job and event history.

    Args:
        history_points: seconds of rate history the view carries.
        forget_after_s: a supervisor silent this long is dropped (one that says it
            stopped is dropped at once).
    """

    def __init__(
        self,
        *,
        history_points: int = 120,
        forget_after_s: float = _FORGET_AFTER_S,
        broker_read_interval_s: float = 2.0,
    ):
        self._supervisors: dict[str, SupervisorState] = {}
        self._history = RateHistory()
        self._backlogs: dict[str, SecondSeries] = {}
        # Per supervisor and queue: its latest broker read, and the time since the one
        # before (reads come at each scaling check, maybe less often than snapshots).
        self._reads: dict[tuple[str, str], tuple[float, float | None]] = {}
        # The link's own reads of the broker, latest per queue (``top`` only).
        self._broker_reads: dict[str, QueueReading] = {}
        self._broker_read_interval_s = broker_read_interval_s
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
        self.queue_name = ""  # no snapshot yet: the link's queue is shown

    # -- in --------------------------------------------------------------------------

    def ingest(self, snapshot: Mapping[str, Any]) -> None:
        """Take one snapshot (older than the one held for its supervisor: ignored)."""
        state = parse_snapshot(snapshot)
        held = self._supervisors.get(state.supervisor_id)
        if held is not None and held.at > state.at:
            return
        if state.stopped:
            self._supervisors.pop(state.supervisor_id, None)
            self._forget_reads()
        else:
            self._supervisors[state.supervisor_id] = state
        self.queue_name = state.queue_name
        self._take_events(state)
        self._take_ended(state)
        self._take_reads(state)
        queues = self._queues(self._states(), state.at)
        for queue in queues:
            series = self._backlogs.setdefault(queue.name, SecondSeries())
            series.record(state.at, backlog(queue.figures))
        for name in set(self._backlogs) - {queue.name for queue in queues}:
            if name not in self._broker_reads:
                del self._backlogs[name]  # no supervisor serves it any more, none reads it
        self._history.record(
            state.at,
            sum(queue.enqueue_rate for queue in queues),
            sum(queue.completion_rate for queue in queues),
        )

    def ingest_readings(self, readings: Iterable[QueueReading]) -> None:
        """Take the link's own reads of the broker (older than the one held: ignored)."""
        for reading in readings:
            held = self._broker_reads.get(reading.name)
            if held is not None and held.read_at > reading.read_at:
                continue
            self._broker_reads[reading.name] = reading
            if reading.exists and reading.ready is not None:
                series = self._backlogs.setdefault(reading.name, SecondSeries())
                series.record(reading.read_at, float(reading.ready))

    def _take_reads(self, state: SupervisorState) -> None:
        for report in state.queues:
            if report.read_at is None:
                continue
            key = (state.supervisor_id, report.name)
            last_read, interval = self._reads.get(key, (None, None))
            if last_read is not None and report.read_at > last_read:
                interval = report.read_at - last_read
            self._reads[key] = (report.read_at, interval)

    def _forget_reads(self) -> None:
        """Drop the reads of supervisors no longer held."""
        self._reads = {
            key: read for key, read in self._reads.items() if key[0] in self._supervisors
        }

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
        self._forget_reads()

    # -- out -------------------------------------------------------------------------

    @property
    def supervisor_ids(self) -> list[str]:
        """Ids of the supervisors heard, sorted."""
        return sorted(self._supervisors)

    def supervisor(self, supervisor_id: str) -> SupervisorState | None:
        """The latest state of one supervisor."""
        return self._supervisors.get(supervisor_id)

    def limits(self, supervisor_id: str, now: float, *, queue: str | None = None) -> Limits | None:
        """The limits to build a change on: asked for and not yet shown, else reported.

        Args:
            supervisor_id: the supervisor.
            now: Unix time.
            queue: one of its pools (``None``: its overall limits). A supervisor serving
                one queue has one set of limits: its overall ones.

        Returns:
            ``None`` for a supervisor not heard, or a queue it does not serve.
        """
        state = self._supervisors.get(supervisor_id)
        if state is None:
            return None
        key = _pool_key(state, queue)
        if key is None:
            reported = Limits(state.min_workers, state.max_workers)
        else:
            report = next((r for r in state.queues if r.name == key), None)
            if report is None:
                return None
            reported = Limits(report.min_workers, report.max_workers)
        return self.pending_limits.effective(supervisor_id, reported, now, queue=key)

    def room_for_minimum(self, supervisor_id: str, queue: str, now: float) -> int:
        """The highest minimum ``queue``'s pool may take on ``supervisor_id``: its overall
        maximum less the other pools' minimums (asked for ones included)."""
        state = self._supervisors.get(supervisor_id)
        overall = self.limits(supervisor_id, now)
        if state is None or overall is None:
            return 0
        others = 0
        for report in state.queues:
            if report.name != queue:
                limits = self.limits(supervisor_id, now, queue=report.name)
                others += report.min_workers if limits is None else limits.min_workers
        return overall.max_workers - others

    def serves_several_queues(self, supervisor_id: str) -> bool:
        """Whether a supervisor has a pool per queue (limits per queue, and overall)."""
        state = self._supervisors.get(supervisor_id)
        return state is not None and len(state.queues) > 1

    def queue_served_by(self, supervisor_id: str, queue: str) -> bool:
        """Whether ``supervisor_id`` serves ``queue``."""
        state = self._supervisors.get(supervisor_id)
        return state is not None and any(report.name == queue for report in state.queues)

    def events_since(self, cursor: int) -> tuple[list[FarmEvent], int]:
        """Events after ``cursor`` (0: all kept), and the cursor to pass next time."""
        new = [event for number, event in self._events if number > cursor]
        return new, self._event_count

    def view(self, now: float) -> FarmView:
        """The farm as the screens show it at Unix time ``now``."""
        states = self._states()
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
            snapshot_stale = is_stale(since, state.heartbeat_interval_s)
            for worker in state.workers:
                # A worker is late when its own heartbeats stop, as its supervisor saw
                # them: time without snapshots says nothing of it (unknown, not late).
                heartbeat_age = worker.heartbeat_age_s + (0.0 if snapshot_stale else since)
                shown = dataclasses.replace(
                    worker,
                    uptime_s=worker.uptime_s + since,
                    heartbeat_age_s=heartbeat_age,
                    data_age_s=since,
                    data_stale=snapshot_stale,
                )
                stale = is_stale(
                    heartbeat_age, state.heartbeat_interval_s, starting=worker.state == "starting"
                )
                workers.append((shown, stale))
        gap = self._tolerated_gap_s(states)
        data_at = max((state.at for state in states), default=None)
        data_stale = data_at is not None and is_stale(now - data_at, gap / _STALE_INTERVALS)
        enqueue_history, completion_history = self._history.series(
            now, self._history_points, max_gap_s=gap
        )
        rates = self._history.current(now, max_gap_s=gap)
        # No supervisor heard: nobody counts arrivals or completions (unknown, not 0/s).
        enqueue, completion = (None, None) if rates is None or data_stale or not states else rates
        decisions = sorted(
            (decision for state in states for decision in state.decisions),
            key=lambda decision: decision.at,
            reverse=True,
        )[:_DECISIONS_SHOWN]
        recent = sorted((*self._succeeded, *self._failed), key=lambda job: -job.ended_at)
        # A snapshot may list a job in flight that a later one (of the worker's heartbeat)
        # reports ended: it is not running any more, past its deadline or not.
        ended = {(job.job_id, job.attempt) for job in recent}
        running = sorted(
            (
                job
                for state in states
                for job in state.running
                if (job.job_id, job.attempt) not in ended
            ),
            key=lambda job: job.started_at,
        )
        queues = self._queues(states, now, history=True)
        totals = [state.waiting_total for state in states]
        return FarmView(
            queue_name=self.queue_name,
            supervisors=tuple(supervisors),
            workers=tuple(workers),
            queue=_totals(queues),
            queues=tuple(queues),
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
            data_at=data_at,
            data_stale=data_stale,
            broker_unreachable_since=(None if data_stale else _broker_lost_since(queues, now)),
            unconsumed=tuple(queue.name for queue in queues if unconsumed_backlog(queue)),
            # Each supervisor's latest snapshot lists its own: none is older than that.
            waiting=tuple(job for state in states for job in state.waiting),
            waiting_total=None if None in totals else sum(t for t in totals if t is not None),
        )

    @staticmethod
    def _tolerated_gap_s(states: list[SupervisorState]) -> float:
        """How long a figure may go without a snapshot before it is unknown: 3 of the
        longest heartbeat interval among the supervisors."""
        interval = max((state.heartbeat_interval_s for state in states), default=1.0)
        return _STALE_INTERVALS * max(interval, 0.1)

    def _states(self) -> list[SupervisorState]:
        return [self._supervisors[key] for key in sorted(self._supervisors)]

    def _queues(
        self, states: list[SupervisorState], now: float, *, history: bool = False
    ) -> list[NamedQueueView]:
        """Each queue served, merged over its supervisors (limits asked for included)."""
        rows = []
        for name in queue_names(states):
            reports: list[QueueReport] = []
            pending = False
            for state in states:
                for report in state.queues:
                    if report.name != name:
                        continue
                    key = _pool_key(state, name)
                    limits = self.limits(state.supervisor_id, now, queue=key)
                    asked = self.pending_limits.is_pending(state.supervisor_id, queue=key)
                    # A supervisor of one queue reports its pool's limits, which its overall
                    # ones (the ones changed) may exceed until a change sets both.
                    if limits is not None and (key is not None or asked):
                        report = dataclasses.replace(
                            report, min_workers=limits.min_workers, max_workers=limits.max_workers
                        )
                    pending |= asked
                    _, interval = self._reads.get((state.supervisor_id, name), (None, None))
                    reports.append(dataclasses.replace(report, read_interval_s=interval))
            series = self._backlogs.get(name)
            rows.append(
                merge_queue(
                    reports,
                    now=now,
                    limits_pending=pending,
                    backlog_history=(
                        series.series(
                            now, self._history_points, max_gap_s=self._tolerated_gap_s(states)
                        )
                        if history and series is not None
                        else ()
                    ),
                )
            )
        return self._with_broker_reads(rows, now, history=history)

    def _with_broker_reads(
        self, rows: list[NamedQueueView], now: float, *, history: bool
    ) -> list[NamedQueueView]:
        """The queues with the link's own broker reads: a fresher read's figures replace
        the supervisors' (one that died leaves its last ones); a queue no supervisor
        serves gets a row of its own from the broker alone."""
        served = {row.name for row in rows}
        merged = []
        for row in rows:
            reading = self._broker_reads.get(row.name)
            age = None if reading is None else max(0.0, now - reading.read_at)
            if reading is None or not reading.exists or age is None:
                merged.append(row)
                continue
            if row.read_age_s is not None and row.read_age_s <= age:
                merged.append(row)
                continue
            figures = dataclasses.replace(
                row.figures,
                ready=reading.ready,
                delayed=reading.delayed,
                dead=reading.dead,
                consumers=reading.consumers,
                next_due_within_s=reading.next_due_within_s,
            )
            fresh = broker_queue(reading, now=now, interval_s=self._broker_read_interval_s)
            merged.append(
                dataclasses.replace(row, figures=figures, read_age_s=age, stale=fresh.stale)
            )
        gap = _STALE_INTERVALS * self._broker_read_interval_s
        for name in sorted(set(self._broker_reads) - served):
            reading = self._broker_reads[name]
            if not reading.exists:
                continue
            series = self._backlogs.get(name)
            merged.append(
                broker_queue(
                    reading,
                    now=now,
                    interval_s=self._broker_read_interval_s,
                    backlog_history=(
                        series.series(now, self._history_points, max_gap_s=gap)
                        if history and series is not None
                        else ()
                    ),
                )
            )
        return merged


#: The freshest read must be at least this old before the broker is said unreachable: a
#: farm reading every 0.3 s is stale after 0.9 s, which a busy host's scheduling can
#: reach while the broker is fine.
_BROKER_LOST_AFTER_S = 3.0


def _broker_lost_since(queues: list[NamedQueueView], now: float) -> float | None:
    """When the supervisors last read the broker, if every queue's read is stale (and at
    least ``_BROKER_LOST_AFTER_S`` old) while their snapshots come on time (they are up,
    the broker is not)."""
    reads = [queue.read_age_s for queue in queues if queue.read_age_s is not None]
    if not reads or not all(queue.stale for queue in queues):
        return None
    if min(reads) < _BROKER_LOST_AFTER_S:
        return None
    return now - min(reads)


def _pool_key(state: SupervisorState, queue: str | None) -> str | None:
    """Which of a supervisor's limits a queue's are: its overall ones when it serves one
    queue (a change is sent without a queue then, as before named queues)."""
    return queue if len(state.queues) > 1 else None


def _totals(queues: list[NamedQueueView]) -> QueueView:
    """The depths of every queue added up; unknown if any queue's is unknown."""

    def total(values: list[int | None]) -> int | None:
        return None if not values or None in values else sum(v for v in values if v is not None)

    figures = [queue.figures for queue in queues]
    return QueueView(
        ready=total([f.ready for f in figures]),
        unacked=sum(f.unacked for f in figures),
        delayed=total([f.delayed for f in figures]),
        dead=total([f.dead for f in figures]),
        consumers=total([f.consumers for f in figures]),
        next_due_within_s=min(
            (f.next_due_within_s for f in figures if f.next_due_within_s is not None),
            default=None,
        ),
    )
