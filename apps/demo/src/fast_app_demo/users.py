"""The demo's users, kept as JSON files: the stand-in for the application's database.

Jobs receive a user's id, never the user: they load it here, the way a real job loads
the row it needs (see "pass an id, not the data" in docs/queue.md).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["User", "UserStore"]


@dataclass(frozen=True, slots=True)
class User:
    """Someone who signed up."""

    id: str
    email: str
    name: str
    signed_up_at: float


class UserStore:
    """Users under ``<data>/users/``, one file each."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "users"

    def create(self, email: str, name: str) -> User:
        """Store a new user and return it, with a fresh id."""
        user = User(
            id=f"usr_{uuid.uuid4().hex[:12]}", email=email, name=name, signed_up_at=time.time()
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{user.id}.json"
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(json.dumps(asdict(user)), encoding="utf-8")
        # The rename makes the user appear whole to a worker reading it at that instant.
        os.replace(partial, path)
        return user

    def get(self, user_id: str) -> User:
        """The user with this id.

        Raises:
            LookupError: no such user.
        """
        path = self.directory / f"{user_id}.json"
        try:
            return User(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise LookupError(f"no user {user_id!r} in {self.directory}") from None
