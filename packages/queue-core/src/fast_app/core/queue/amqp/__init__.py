"""RabbitMQ plumbing shared by the ``async_farm`` driver and the workers."""

from fast_app.core.queue.amqp.headers import job_properties, sign, signature_matches
from fast_app.core.queue.amqp.publisher import Publisher
from fast_app.core.queue.amqp.table_depth import MAX_TABLE_DEPTH, guard_table_depth
from fast_app.core.queue.amqp.topology import (
    DELAY_LEVELS_MS,
    Topology,
    delay_level_ms,
    explain_mismatch,
)

__all__ = [
    "DELAY_LEVELS_MS",
    "MAX_TABLE_DEPTH",
    "Publisher",
    "Topology",
    "delay_level_ms",
    "explain_mismatch",
    "guard_table_depth",
    "job_properties",
    "sign",
    "signature_matches",
]
