"""Which functions a message may make a worker run."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fast_app.farm import JobImportError
from fast_app.farm.worker import _allow_list
from fast_app.farm.worker._allow_list import AllowList

# The workspace's demo app is the installed distribution these tests judge; farm-supervisor
# alone (its own CI stage) does not install it: the whole suite runs them.
needs_the_demo = pytest.mark.skipif(
    importlib.util.find_spec("fast_app_demo") is None,
    reason="needs fast-app-demo installed (the whole suite has it)",
)

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


# -- what is never allowed ------------------------------------------------------------

REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "uv.lock").exists())
FRAMEWORK_DIR = REPO_ROOT / "packages" / "farm-supervisor" / "src" / "fast_app"
NEVER = "never: the standard library, fast_app, private names"


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An application directory on ``sys.path``; its modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "module",
    ["fast_app", "fast_app.farm.cli", "fast_app.farm.worker._app", "fast_app.core.queue"],
)
def test_fast_app_is_refused_even_when_listed_or_imported(module: str) -> None:
    listed = AllowList(prefixes=("fast_app",), imported=(), app_roots=(REPO_ROOT,))
    imported = AllowList(prefixes=(), imported=("fast_app",), app_roots=(REPO_ROOT,))

    for allow in (listed, imported):
        assert "is part of fast_app, the framework" in str(allow.refusal(module))


@pytest.mark.parametrize(
    "path",
    [
        "fast_app.farm.cli.main",
        "fast_app.farm.worker._app.run_hooks",
        "fast_app.core.queue.testing.rabbitmq._signal_group",
    ],
)
def test_resolve_refuses_the_framework_without_importing_anything(path: str) -> None:
    allow = AllowList(
        prefixes=(), imported=("fast_app.farm", "fast_app.farm.cli"), app_roots=(REPO_ROOT,)
    )

    with pytest.raises(JobImportError, match="the framework"):
        allow.resolve(path)


def test_the_framework_files_are_refused_under_another_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the directory above fast_app's files on sys.path: ``farm.cli`` is its CLI.
    monkeypatch.syspath_prepend(str(FRAMEWORK_DIR))
    listed = AllowList(prefixes=("farm",), imported=(), app_roots=())
    by_default = AllowList(prefixes=(), imported=(), app_roots=(FRAMEWORK_DIR,))

    for allow in (listed, by_default):
        assert "is a file of fast_app" in str(allow.refusal("farm.cli"))
    assert "farm" not in sys.modules


@pytest.mark.parametrize(
    "module", ["_private", "farm_jobs._helpers", "app.__main__", "app._internal.jobs"]
)
def test_private_modules_are_refused_even_when_listed(module: str) -> None:
    allow = AllowList(prefixes=("_private", "farm_jobs", "app"), imported=(), app_roots=())

    assert "is private" in str(allow.refusal(module))


def test_private_functions_are_refused_even_in_allowed_modules(app_dir: Path) -> None:
    write(app_dir / "private_jobs.py", "def _helper() -> None: ...\ndef job() -> None: ...\n")
    allow = AllowList(prefixes=("private_jobs",), imported=(), app_roots=())

    with pytest.raises(JobImportError, match="is private"):
        allow.resolve("private_jobs._helper")
    assert allow.resolve("private_jobs.job").__name__ == "job"


def test_paths_that_are_not_python_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # From the repository root, ``packages.farm-supervisor`` is an importable directory.
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    allow = AllowList(prefixes=(), imported=(), app_roots=(REPO_ROOT,))

    problem = allow.refusal("packages.farm-supervisor.tests.support.farm_jobs")

    assert "is not a module path" in str(problem)


# -- the default: FARM_IMPORTS, and the application's own modules ---------------------


@needs_the_demo
def test_by_default_editable_installs_under_the_current_directory_are_refused() -> None:
    # Given a worker in the repository root, where fast_app_demo's sources live.
    allow = AllowList(prefixes=(), imported=(), app_roots=(REPO_ROOT,))

    problem = allow.refusal("fast_app_demo.settings")

    assert problem is not None
    assert "not part of the application" in problem
    assert "belongs to the installed distribution fast-app-demo" in problem


@needs_the_demo
def test_by_default_a_second_name_for_installed_sources_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # From the repository root ``apps`` is a namespace package holding the demo again.
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    allow = AllowList(prefixes=(), imported=(), app_roots=(REPO_ROOT,))
    loaded_before = set(sys.modules)

    problem = allow.refusal("apps.demo.src.fast_app_demo.jobs")

    assert "belongs to the installed distribution fast-app-demo" in str(problem)
    # Judged without importing (the whole suite may have imported ``apps`` already).
    assert "apps.demo.src.fast_app_demo.jobs" not in sys.modules
    assert set(sys.modules) - loaded_before == set()


@needs_the_demo
def test_by_default_only_the_imported_modules_of_an_installed_distribution_are_allowed() -> None:
    allow = AllowList(prefixes=(), imported=("fast_app_demo.jobs",), app_roots=(REPO_ROOT,))

    assert allow.refusal("fast_app_demo.jobs") is None
    assert allow.refusal("fast_app_demo.jobsmith") is not None
    assert "installed distribution" in str(allow.refusal("fast_app_demo.cli"))


def test_by_default_a_top_level_name_an_installed_distribution_provides_is_refused(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(app_dir / "claimed" / "__init__.py")
    write(app_dir / "claimed" / "jobs.py")
    monkeypatch.setattr(
        _allow_list, "_distributions", _allow_list._Distributions({"claimed": ["claimer"]}, ())
    )
    allow = AllowList(prefixes=(), imported=(), app_roots=(app_dir,))

    assert "belongs to the installed distribution claimer" in str(allow.refusal("claimed.jobs"))


def test_by_default_namespace_packages_of_the_application_are_allowed(app_dir: Path) -> None:
    write(app_dir / "spaced" / "jobs" / "email.py", "def send() -> None: ...\n")
    allow = AllowList(prefixes=(), imported=(), app_roots=(app_dir,))

    assert allow.refusal("spaced.jobs.email") is None
    assert "spaced" not in sys.modules  # judged without importing
    assert allow.resolve("spaced.jobs.email.send").__name__ == "send"


def test_refusing_a_module_does_not_run_its_packages(app_dir: Path) -> None:
    marker = app_dir / "ran"
    write(app_dir / "loud" / "__init__.py", f"open({str(marker)!r}, 'w').close()\n")
    write(app_dir / "loud" / "jobs.py")
    allow = AllowList(prefixes=(), imported=(), app_roots=(app_dir / "elsewhere",))

    assert "not part of the application" in str(allow.refusal("loud.jobs"))
    assert not marker.exists()


@needs_the_demo
def test_explicit_prefixes_may_allow_an_installed_distribution() -> None:
    allow = AllowList(prefixes=("fast_app_demo.settings",), imported=(), app_roots=())

    assert allow.refusal("fast_app_demo.settings") is None
    assert allow.resolve("fast_app_demo.settings.default_data_dir").__name__ == ("default_data_dir")


# -- describe, caching, threads ---------------------------------------------------------


def test_describe_states_the_default_rule() -> None:
    allow = AllowList(prefixes=(), imported=("app.jobs",), app_roots=(Path("/srv/app"),))

    assert allow.describe() == (
        "FARM_IMPORTS modules app.jobs (and submodules), modules of /srv/app not installed "
        f"as packages; {NEVER}"
    )


def test_describe_states_the_explicit_rule() -> None:
    allow = AllowList(
        prefixes=("app", "billing.jobs"), imported=("app.jobs",), app_roots=(Path("/srv"),)
    )

    assert allow.describe() == f"FARM_ALLOWED_MODULES: app, billing.jobs; {NEVER}"


def test_resolve_from_many_threads_returns_one_function() -> None:
    allow = AllowList(prefixes=(), imported=(), app_roots=(SUPPORT,))

    with ThreadPoolExecutor(8) as pool:
        functions = set(pool.map(lambda _: allow.resolve("farm_jobs.record"), range(64)))

    assert len(functions) == 1
