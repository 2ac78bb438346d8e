"""Run a benchmark on an earlier revision and on the working tree, alternating, in one run.

Run: ``uv run python benchmarks/compare_with_revision.py REV SCRIPT [ARGS...] [--rounds N]``
e.g. ``uv run python benchmarks/compare_with_revision.py HEAD~3 sync_overhead.py``.

The revision's packages are extracted with ``git archive`` into a temporary directory and
put first on ``PYTHONPATH`` (worker processes inherit it), so both sides run with this
environment's dependencies; each side runs its own copy of ``SCRIPT``. Rounds alternate
(revision, tree, revision, tree...) so that a machine getting slower or faster during
the run weighs on both alike. Each round's output is printed as the script prints it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def extract(revision: str, into: Path) -> None:
    """The files of ``revision`` under ``into``."""
    archive = into / "revision.tar"
    with open(archive, "wb") as output:
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", revision], stdout=output, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")


def run(script: Path, args: list[str], source_roots: list[Path]) -> str:
    environment = dict(os.environ)
    if source_roots:
        paths = [str(root) for root in source_roots]
        environment["PYTHONPATH"] = os.pathsep.join([*paths, environment.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, script.name, *args],
        cwd=script.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + (f"\n(exit {done.returncode})\n{done.stderr}" if done.returncode else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="a git revision (commit, tag, HEAD~N)")
    parser.add_argument("script", help="a script in benchmarks/, e.g. sync_overhead.py")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side (default 2)")
    known, script_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="fast-app-revision-") as directory:
        root = Path(directory)
        extract(known.revision, root)
        tree = root / "tree"
        revision_roots = sorted((tree / "packages").glob("*/src"))
        sides = [
            (f"revision {known.revision}", tree / "benchmarks" / known.script, revision_roots),
            ("working tree", REPOSITORY / "benchmarks" / known.script, []),
        ]
        for round_number in range(1, known.rounds + 1):
            for label, script, roots in sides:
                print(f"=== {label}, round {round_number}", flush=True)
                print(run(script, script_args, roots), flush=True)


if __name__ == "__main__":
    main()
