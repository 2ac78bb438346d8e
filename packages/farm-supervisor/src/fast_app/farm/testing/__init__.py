"""Helpers to test the farm against a real RabbitMQ.

The private, throwaway RabbitMQ node is queue-core's test kit
(``fast_app.core.queue.testing.rabbitmq``); its names are re-exported here for the code
that imported them from this package. The ``farm_queue_name`` pytest fixture is
registered by the ``fast_app_farm`` pytest plugin once this package is installed;
``rabbitmq_url`` comes from queue-core's ``fast_app_queue`` plugin.
"""

from fast_app.core.queue.testing.rabbitmq import (
    RabbitMQNode,
    RabbitMQNotInstalledError,
    RabbitMQStartError,
    rabbitmq_node,
)

__all__ = ["RabbitMQNode", "RabbitMQNotInstalledError", "RabbitMQStartError", "rabbitmq_node"]
