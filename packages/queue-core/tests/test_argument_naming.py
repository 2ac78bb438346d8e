"""Errors name the argument a value was passed as, also inside ``*args`` and ``**kwargs``."""

from __future__ import annotations

import pytest
import queue_core_jobs as jobs

from fast_app.core.queue import UnencodableArgumentError, queue
from fast_app.core.queue.functions import describe_function


async def test_an_unencodable_value_caught_by_star_star_kwargs_is_named_by_its_keyword() -> None:
    with pytest.raises(
        UnencodableArgumentError,
        match=r"^argument 'handle' of queue_core_jobs.record is an object, which",
    ):
        await queue(jobs.record, 1, handle=object())


async def test_an_unencodable_value_caught_by_star_args_is_named_by_its_position() -> None:
    with pytest.raises(
        UnencodableArgumentError,
        match=r"^argument 'args\[1\]' of queue_core_jobs.record is an object, which",
    ):
        await queue(jobs.record, 1, object(), 3)


def test_name_arguments_expands_star_args_and_star_star_kwargs() -> None:
    spec = describe_function(jobs.receive_varargs)

    named = spec.name_arguments(("p0", "p1"), {"home": "h", "work": "w"})

    assert named == {"points[0]": "p0", "points[1]": "p1", "home": "h", "work": "w"}


def test_name_arguments_names_a_parameter_the_same_by_position_or_keyword() -> None:
    spec = describe_function(jobs.send_welcome_email)

    assert spec.name_arguments(("u1",), {}) == spec.name_arguments((), {"user_id": "u1"})
    assert spec.name_arguments((), {"template": "t"}, partial=True) == {"template": "t"}
