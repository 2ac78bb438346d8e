"""Helpers to test the farm against a real RabbitMQ.

The private, throwaway RabbitMQ node is queue-core's test kit
(``fast_app.core.queue.testing.rabbitmq``); its names are re-exported here for the code
that imported them from this package. The ``farm_queue_name`` pytest fixture is
registered by the ``fast_app_farm`` pytest plugin once this package is installed;
``rabbitmq_url`` comes from queue-core's ``fast_app_queue`` plugin.

``scaling_simulation`` runs many supervisors' scaling policy against one simulated queue,
with no broker (``python -m fast_app.farm.testing.scaling_simulation``). It is listed
here but not imported: running it with ``-m`` after this package imported it would load
it twice.
"""

from fast_app.core.queue.testing.rabbitmq import (
    RabbitMQNode,
    RabbitMQNotInstalledError,
    RabbitMQStartError,
    rabbitmq_node,
)

__all__ = [
    "RabbitMQNode",
    "RabbitMQNotInstalledError",
    "RabbitMQStartError",
    "rabbitmq_node",
    "scaling_simulation",
]
