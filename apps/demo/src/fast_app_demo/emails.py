"""The welcome email, rendered as a message file in the demo's outbox."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

from fast_app_demo.users import User

__all__ = ["render_welcome_email"]

_SENDER = "FastApp demo <hello@fast-app.example>"


def render_welcome_email(user: User, *, request_id: str | None, job_id: str) -> bytes:
    """The welcome message for ``user``, as the bytes an SMTP server would receive.

    The request id and the job id go into headers, so that a support person holding
    the email can find the request that caused it and the job that sent it.
    """
    signed_up = dt.datetime.fromtimestamp(user.signed_up_at, dt.UTC)
    message = EmailMessage()
    message["From"] = _SENDER
    message["To"] = f"{user.name} <{user.email}>"
    message["Subject"] = f"Welcome to FastApp, {user.name}!"
    message["Date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["X-Request-ID"] = request_id or "none"
    message["X-Job-ID"] = job_id
    message.set_content(
        f"Hello {user.name},\n\n"
        f"thanks for signing up on {signed_up:%d %B %Y}.\n"
        "This email was sent by a job, not by the request that created your account.\n\n"
        "-- the FastApp demo\n"
    )
    return message.as_bytes()
