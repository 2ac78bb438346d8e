"""OpenTelemetry in the farm: SDK set-up from ``OTEL_*`` variables, hard-timeout kills on
the job's trace, and gauges of the farm's state. Job spans and metrics are queue-core's
(``fast_app.core.queue.telemetry``); see docs/tracing.md.
"""

from fast_app.farm.telemetry.gauges import FarmGauges
from fast_app.farm.telemetry.kills import record_hard_timeout_kill
from fast_app.farm.telemetry.sdk import configure_sdk_from_environment

__all__ = ["FarmGauges", "configure_sdk_from_environment", "record_hard_timeout_kill"]
