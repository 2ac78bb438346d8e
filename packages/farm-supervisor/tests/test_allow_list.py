"""Which functions a message may make a worker run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fast_app.farm import JobImportError
from fast_app.farm.worker._allow_list import AllowList

SUPPORT = Path(__file__).parent / "support"


def test_the_standard_library_and_builtins_are_refused_even_when_listed() -> None:
    allow = AllowList(
        prefixes=("os", "builtins", "subprocess"), imported=(), app_roots=(Path("/"),)
    )

    for module in ("os", "os.path", "builtins", "subprocess", "shutil"):
        assert allow.refusal(module) is not None
        assert "standard library" in str(allow.refusal(module))


def test_explicit_prefixes_allow_their_modules_and_nothing_else() -> None:
    allow = AllowList(prefixes=("farm_jobs", "app.jobs"), imported=(), app_roots=(SUPPORT,))

    assert allow.refusal("farm_jobs") is None
    assert allow.refusal("app.jobs.email") is None
    assert "FARM_ALLOWED_MODULES" in str(allow.refusal("app.jobsmith"))
    assert "FARM_ALLOWED_MODULES" in str(allow.refusal("farm_testkit"))


def test_by_default_modules_of_the_application_directory_are_allowed() -> None:
    allow = AllowList(prefixes=(), imported=(), app_roots=(SUPPORT,))

    assert allow.refusal("farm_jobs") is None


def test_by_default_installed_packages_are_refused() -> None:
    allow = AllowList(prefixes=(), imported=(), app_roots=(Path(sys.prefix).parent,))

    problem = allow.refusal("aio_pika")

    assert problem is not None
    assert "not part of the application" in problem


def test_by_default_imported_modules_are_allowed_wherever_they_live() -> None:
    allow = AllowList(prefixes=(), imported=("msgspec",), app_roots=(SUPPORT,))

    assert allow.refusal("msgspec.json") is None
    assert allow.refusal("pydantic") is not None


def test_modules_that_do_not_exist_are_refused() -> None:
    allow = AllowList(prefixes=(), imported=(), app_roots=(SUPPORT,))

    assert "cannot be found" in str(allow.refusal("no_such_module_xyz"))


def test_resolve_returns_the_function_and_caches_it() -> None:
    allow = AllowList(prefixes=("farm_jobs",), imported=(), app_roots=())

    function = allow.resolve("farm_jobs.record")

    assert function.__name__ == "record"
    assert allow.resolve("farm_jobs.record") is function


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("farm_jobs.json", "is not a function defined in farm_jobs"),
        ("farm_jobs.Path", "is not a function defined in farm_jobs"),
        ("farm_jobs.nothing", "has no function 'nothing'"),
        ("farm_jobs_missing.run", "cannot import farm_jobs_missing"),
        ("nodots", "not a dotted path"),
        ("os.system", "standard library"),
    ],
)
def test_resolve_refuses_what_queue_would_never_name(path: str, message: str) -> None:
    allow = AllowList(prefixes=("farm_jobs", "farm_jobs_missing"), imported=(), app_roots=())

    with pytest.raises(JobImportError, match=message):
        allow.resolve(path)
