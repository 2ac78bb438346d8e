"""``RABBITMQ_URL`` as one URL or a comma-separated list of a cluster's nodes.

``amqp://app:pw@rabbit-1:5672/,amqp://app:pw@rabbit-2:5672/``: every process connects to
the first node that accepts, in the order given, and to the next one when its node goes.

A comma may also stand unencoded in a password (RFC 3986 allows it in user info), so a
value is split only before a comma that starts another ``amqp://`` or ``amqps://`` URL.
Everything here is pure text handling: it never raises on what it is given, and what it
prints never holds a password.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_BROKER_URLS",
    "broker_passwords",
    "describe_error",
    "redact_url",
    "scrub_passwords",
    "split_broker_urls",
]

#: Most nodes one ``RABBITMQ_URL`` may list (a cluster is 3, 5 or 7 nodes).
MAX_BROKER_URLS = 16

_NEXT_URL = re.compile(r"\s*,\s*(?=amqps?://)", re.IGNORECASE)
_HIDDEN_URL = "<hidden URL>"


def split_broker_urls(value: str) -> list[str]:
    """The URLs of ``value``, in order (one when it lists no other)."""
    return [url.strip() for url in _NEXT_URL.split(value.strip())]


def redact_url(value: str) -> str:
    """Hide the password of a URL, or of each URL of a list: ``amqp://user:***@host/``;
    never raises.

    A URL that cannot be parsed is hidden whole: what looks like its password cannot be
    told apart from the rest.
    """
    return ",".join(_redact_one(url) for url in split_broker_urls(value))


def _redact_one(url: str) -> str:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on an invalid port
    except ValueError:
        return _HIDDEN_URL
    user_info, at, host = parts.netloc.rpartition("@")
    if not at:
        # No user info where a URL has it; an '@' elsewhere ("user:password@host"
        # without a scheme) may still be next to a password.
        return _HIDDEN_URL if "@" in url else url
    user, colon, _ = user_info.partition(":")
    if not colon:
        return url
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def broker_passwords(value: str) -> list[str]:
    """The passwords of the URLs of ``value``, as written and decoded, longest first
    (so that scrubbing a password never leaves the end of a longer one)."""
    found: set[str] = set()
    for url in split_broker_urls(value):
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found.update({password, unquote(password)})
    return sorted(found, key=len, reverse=True)


def describe_error(error: BaseException, value: str) -> str:
    """``error`` as ``Type: message`` for a log or an error, with every password of
    ``value``'s URLs hidden."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return scrub_passwords(text, value)


def scrub_passwords(text: str, value: str) -> str:
    """``text`` (an error message, say) with every password of ``value``'s URLs hidden."""
    for password in broker_passwords(value):
        text = text.replace(password, "***")
    return text
