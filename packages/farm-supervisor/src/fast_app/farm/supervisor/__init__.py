"""The supervisor: worker processes, heartbeats, autoscaling by queue depth, hard-timeout kills."""

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
    "FarmLoad",
    "ScalingDecision",
    "ScalingMemory",
    "ScalingPolicy",
    "Supervisor",
    "decide",
]
