"""The supervisor: worker processes, heartbeats, autoscaling by queue depth, hard-timeout kills.

``scaling.decide`` is how many workers one queue needs; ``balancing.balance`` shares the
supervisor's workers between the queues it serves (both pure).
"""

from fast_app.farm.supervisor._workers import template_environment
from fast_app.farm.supervisor.balancing import (
    BalanceDecision,
    BalanceMemory,
    BalancePolicy,
    QueueLimits,
    balance,
)
from fast_app.farm.supervisor.runtime import EXIT_DRAIN_INCOMPLETE, EXIT_OK, Supervisor
from fast_app.farm.supervisor.scaling import (
    FarmLoad,
    ScalingDecision,
    ScalingMemory,
    ScalingPolicy,
    decide,
)

__all__ = [
    "EXIT_DRAIN_INCOMPLETE",
    "EXIT_OK",
    "BalanceDecision",
    "BalanceMemory",
    "BalancePolicy",
    "QueueLimits",
    "FarmLoad",
    "ScalingDecision",
    "ScalingMemory",
    "ScalingPolicy",
    "Supervisor",
    "balance",
    "decide",
    "template_environment",
]
