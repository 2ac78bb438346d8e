"""Request-scoped context that travels with deferred jobs.

Set values while handling a request; ``queue()`` snapshots the ones that can be
encoded and the job sees them again when it runs::

    from fast_app.core.context import context, define_key

    USER_ID = define_key("user_id", require_serializable=True)
    context.set(USER_ID, "66f2d3...")
"""

from ._context import Context, context
from ._keys import ContextKey, define_key
from ._wire import is_wire_encodable, wire_enc_hook

__all__ = [
    "Context",
    "ContextKey",
    "context",
    "define_key",
    "is_wire_encodable",
    "wire_enc_hook",
]
