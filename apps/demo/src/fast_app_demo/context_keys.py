"""The context keys the web app sets for each request and the jobs read back."""

from __future__ import annotations

from fast_app.core.context import define_key

__all__ = ["REQUEST_ID", "USER_ID"]

#: The request that enqueued the job: the ``X-Request-ID`` header, or one made up.
REQUEST_ID = define_key("request_id", require_serializable=True)
#: The user the request acted for: the one signing up, or the ``X-User-ID`` header.
USER_ID = define_key("user_id", require_serializable=True)
