"""What the job codec can carry: the one rule shared by context snapshots and job arguments.

The job codec (in ``fast_app.core.queue``) encodes with msgspec's JSON encoder and this
hook. Keeping the rule here, in the lowest package, lets the context decide at ``set``
time whether a value can travel with a job without importing the queue package.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["is_wire_encodable", "wire_enc_hook"]


def wire_enc_hook(value: Any) -> Any:
    """Encode the types msgspec does not know natively (pydantic models).

    Raises:
        TypeError: for any other type.
    """
    # Duck-typed so that this package does not depend on pydantic.
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and hasattr(type(value), "model_fields"):
        return model_dump(mode="json")
    raise TypeError(f"objects of type {type(value).__qualname__} cannot be encoded")


_encoder = msgspec.json.Encoder(enc_hook=wire_enc_hook)


def is_wire_encodable(value: object) -> bool:
    """Tell whether the job codec can encode ``value``."""
    try:
        _encoder.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True
