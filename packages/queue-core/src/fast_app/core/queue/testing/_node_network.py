"""Loopback ports for a private RabbitMQ node, and probes telling when it listens."""

from __future__ import annotations

import contextlib
import socket
from typing import Final

__all__ = ["HOST", "accepts_tcp", "free_ports", "speaks_amqp"]

#: Every listener of a private node binds to loopback only.
HOST: Final = "127.0.0.1"
_AMQP_HEADER: Final = b"AMQP\x00\x00\x09\x01"
_CONNECTION_START: Final = b"\x00\x0a\x00\x0a"  # class 10 (connection), method 10 (start)


def free_ports(count: int, preferred: int | None = None) -> list[int]:
    """Return ``count`` distinct free loopback ports, the first one ``preferred`` if free."""
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        while len(ports) < count:
            # Every socket stays bound until all are picked, so the kernel
            # cannot hand out the same port twice.
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((HOST, preferred if preferred and not ports else 0))
            except OSError:
                sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def accepts_tcp(port: int) -> bool:
    """Return whether something accepts TCP connections on loopback ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def speaks_amqp(port: int) -> bool:
    """Return whether ``port`` answers the AMQP 0-9-1 header with Connection.Start."""
    # A bare TCP connect is not enough: the port may belong to someone else,
    # and the kernel accepts connections into the backlog before rabbit reads.
    data = b""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(_AMQP_HEADER)
            while len(data) < 11:
                if not (chunk := sock.recv(11 - len(data))):
                    return False
                data += chunk
    except OSError:
        return False
    return data[0] == 1 and data[7:11] == _CONNECTION_START
