"""Behaviour of the context: isolation between tasks and threads, typed keys, snapshots."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import threading
import uuid
import warnings
from collections.abc import Iterator

import pytest

from fast_app.core.context import ContextKey, context, define_key


@pytest.fixture(autouse=True)
def empty_context() -> Iterator[None]:
    context.clear()
    yield
    context.clear()


class NotEncodable:
    pass


def test_set_then_get_returns_the_value() -> None:
    context.set("user_id", "u1")

    assert context.get("user_id") == "u1"
    assert "user_id" in context


def test_get_falls_back_to_the_given_default_then_the_key_default() -> None:
    key = define_key("locale_t1", default="en")

    assert context.get("missing", default=7) == 7
    assert context.get("missing") is None
    assert context.get(key) == "en"
    assert context.get("locale_t1") == "en"


def test_clear_named_keys_keeps_the_others() -> None:
    context.set("a", 1)
    context.set("b", 2)

    context.clear("a")

    assert context.keys() == ["b"]


def test_clear_without_keys_resets_everything() -> None:
    context.set("a", 1)
    context.set("b", 2)

    context.clear()

    assert context.keys() == []
    assert context.snapshot() == {}


def test_snapshot_is_a_copy() -> None:
    context.set("a", 1)
    snapshot = context.snapshot()

    snapshot["a"] = 2

    assert context.get("a") == 1


def test_install_replaces_the_whole_context() -> None:
    context.set("old", 1)

    context.install({"request_id": "r1", "when": dt.date(2024, 1, 1)})

    assert context.keys() == ["request_id", "when"]
    assert context.snapshot() == {"request_id": "r1", "when": dt.date(2024, 1, 1)}


def test_typed_key_is_usable_as_its_string_name() -> None:
    key: ContextKey[uuid.UUID] = define_key("tenant_t1")
    tenant = uuid.uuid4()

    context.set(key, tenant)

    assert context.get("tenant_t1") == tenant
    assert context.snapshot() == {"tenant_t1": tenant}
    assert key == "tenant_t1"
    assert repr(key) == "ContextKey('tenant_t1')"


def test_define_key_twice_with_the_same_rules_returns_the_same_key() -> None:
    assert define_key("same_t1", default=1) is define_key("same_t1", default=1)


def test_define_key_twice_with_other_rules_is_refused() -> None:
    define_key("conflict_t1", require_serializable=True)

    with pytest.raises(ValueError, match="already defined"):
        define_key("conflict_t1")


def test_required_serializable_key_refuses_unencodable_values() -> None:
    key = define_key("db_session_t1", require_serializable=True)

    with pytest.raises(TypeError, match=r"db_session_t1.*NotEncodable"):
        context.set(key, NotEncodable())
    assert "db_session_t1" not in context


def test_require_serializable_applies_to_the_plain_string_name_too() -> None:
    define_key("strict_t1", require_serializable=True)

    with pytest.raises(TypeError, match="strict_t1"):
        context.set("strict_t1", NotEncodable())


def test_require_picklable_is_an_alias() -> None:
    key = define_key("legacy_t1", require_picklable=True)

    assert key.require_serializable
    with pytest.raises(TypeError, match="legacy_t1"):
        context.set(key, object())


def test_ordinary_key_warns_once_and_keeps_the_value_out_of_snapshots() -> None:
    value = NotEncodable()
    with pytest.warns(RuntimeWarning, match=r"'conn_t1'.*NotEncodable"):
        context.set("conn_t1", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        context.set("conn_t1", NotEncodable())  # second time: no warning

    assert isinstance(context.get("conn_t1"), NotEncodable)
    assert "conn_t1" not in context.snapshot()


def test_replacing_an_unencodable_value_by_an_encodable_one_puts_it_back_in_snapshots() -> None:
    with pytest.warns(RuntimeWarning):
        context.set("swap_t1", NotEncodable())

    context.set("swap_t1", "fine")

    assert context.snapshot() == {"swap_t1": "fine"}


async def test_two_concurrent_tasks_never_see_each_other_s_values() -> None:
    both_set = asyncio.Barrier(2)

    async def handle(user_id: str) -> tuple[object, dict[str, object]]:
        context.set("user_id", user_id)
        await both_set.wait()  # both tasks have set their value before either reads
        return context.get("user_id"), context.snapshot()

    first, second = await asyncio.gather(handle("alice"), handle("bob"))

    assert first == ("alice", {"user_id": "alice"})
    assert second == ("bob", {"user_id": "bob"})
    assert context.get("user_id") is None


def test_two_concurrent_threads_never_see_each_other_s_values() -> None:
    both_set = threading.Barrier(2, timeout=5)
    seen: dict[str, object] = {}

    def handle(user_id: str) -> None:
        context.set("user_id", user_id)
        both_set.wait()
        seen[user_id] = context.get("user_id")

    threads = [threading.Thread(target=handle, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert seen == {"alice": "alice", "bob": "bob"}
    assert context.get("user_id") is None


def test_a_snapshot_installed_in_a_separate_context_is_visible_there_only() -> None:
    context.set("user_id", "caller")
    job_context = contextvars.Context()

    job_context.run(context.install, {"user_id": "job"})

    assert job_context.run(context.get, "user_id") == "job"
    assert context.get("user_id") == "caller"
