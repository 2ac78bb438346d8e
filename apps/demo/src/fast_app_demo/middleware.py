"""Per-request context: the request id and the user id that jobs carry with them."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fast_app.core.context import context
from fast_app_demo.context_keys import REQUEST_ID, USER_ID

__all__ = ["RequestContextMiddleware"]

# Header values end up in jobs, logs and email headers: take only plain identifiers.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Sets ``request_id`` (``X-Request-ID``, or a new one) and ``user_id`` (``X-User-ID``,
    a stand-in for authentication) in the context, and returns ``X-Request-ID``.

    A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``, which runs
    the endpoint in another task: here the endpoint runs in this task and sees the
    values set, as does every ``queue()`` call it makes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id", "")
        if not _IDENTIFIER.match(request_id):
            request_id = f"req-{uuid.uuid4().hex[:12]}"
        values: dict[str, str] = {REQUEST_ID: request_id}
        user_id = headers.get("x-user-id", "")
        if _IDENTIFIER.match(user_id):
            values[USER_ID] = user_id
        # Replace, not add to, the task's context: servers run each request in a fresh
        # task, but an in-process client (the tour's) calls the app in its own task, and
        # one request's user must never leak into the next.
        context.install(values)

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_request_id)
