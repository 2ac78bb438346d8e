"""N supervisors scaling one shared queue with the real policy, simulated in seconds.

No broker, no process: a discrete-time model (fixed step, seeded ``random.Random``) of
one jobs queue and the workers of ``N`` supervisors. Each supervisor calls the real
``scaling.decide`` every ``scale_check_interval_s`` (phases de-synchronised at random) on
what it would see in production:

- ``ready``, ``unacked`` and ``total_consumers`` as they were ``view_delay_s`` ago (a
  passive declare and the peers' snapshots are not instantaneous), ``ready`` and
  ``unacked`` with multiplicative noise;
- its own workers exactly (starting ones included, draining ones not), their jobs in
  flight, and their pace as the heartbeats measure it (completions over the last 10 s,
  idle time included, as ``WorkerProcess.rate`` does).

Then its pool acts like ``WorkerPool.keep_count`` every 0.2 s: it spawns the missing
workers, which consume only ``startup_s`` later, and drains extra ones that were idle at
their last heartbeat; a draining worker takes no delivery and ends once its jobs in
flight are done. The queue delivers round-robin to consumers with a free slot (prefetch
= concurrency); a job's service time is uniform within ``mean ± spread``. A dying
supervisor's workers vanish at once and the broker puts their unacknowledged jobs back.

Figures per run (see ``Outcome``): the ideal need, ``ceil(work / per-worker
throughput)`` with throughput ``concurrency / mean service time``, where the work is the
arrival rate (steady load) or the burst spread over ``target_drain_s`` (a burst); the
time to reach it and to empty the ready backlog; the peak of live workers (starting and
consuming) against the need; direction changes of the worker count after convergence
and the largest regrowth after a shrink; jobs lost (enqueued minus completed minus still
queued or in flight, 0 by construction).

Bounds checked (``Bounds``; why they hold is in ``docs/scaling-simulation.md``):

- over-shoot: ``peak <= min(N * max_workers, ceil(1.6 * need) + scale_up_step *
  ceil((max view delay + startup) / scale_check_interval + 1))``. The policy holds a
  supervisor's workers while the jobs in flight fill more than 75 % of one worker fewer
  (66 % of the slots at 8 workers: up to 1.52 * the need), and one supervisor adds a step
  per decision while its view is blind to the workers it just started. The worst case
  (every supervisor adding through the whole blind window, ``N *`` that step term) never
  showed: the policy counts the other supervisors' consumers.
- convergence: the consuming workers reach the need and the ready backlog empties
  within the run; for a burst (no steady arrivals) within ``2 * (ramp + blind window +
  one decision)``, the ramp being ``N * scale_up_step`` workers per decision, and the
  backlog ``2 * target_drain_s`` later. Under a steady load the ready backlog stays under
  what arrives in ``(1 + noise) * target_drain_s`` plus the blind window, one decision
  and any outage: the policy sizes the farm to drain its backlog in
  ``target_drain_s``, not to match the arrival rate, so a farm a little short of the
  rate lets its backlog grow to that size before it adds a worker.
- oscillation: at most ``N`` direction changes after convergence (each supervisor may
  turn once, from its last addition to its slow scale-down) and no regrowth after a
  shrink larger than ``N * scale_up_step``.
- nothing lost.

Run it: ``python -m fast_app.farm.testing.scaling_simulation --supervisors 1,10,100``.
"""

from fast_app.farm.testing.scaling_simulation._cli import main
from fast_app.farm.testing.scaling_simulation.checks import Bounds, bounds, check
from fast_app.farm.testing.scaling_simulation.model import FarmModel, Scenario, scenarios
from fast_app.farm.testing.scaling_simulation.outcome import Outcome
from fast_app.farm.testing.scaling_simulation.simulate import run

__all__ = [
    "Bounds",
    "FarmModel",
    "Outcome",
    "Scenario",
    "bounds",
    "check",
    "main",
    "run",
    "scenarios",
]
