"""RabbitMQ plumbing shared by the ``async_farm`` driver and the workers."""

from fast_app.core.queue.amqp.headers import job_properties, sign, signature_matches
from fast_app.core.queue.amqp.publisher import Publisher
from fast_app.core.queue.amqp.tolerant_decoding import MAX_TABLE_DEPTH, install_tolerant_decoding
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
    "install_tolerant_decoding",
    "job_properties",
    "sign",
    "signature_matches",
]
