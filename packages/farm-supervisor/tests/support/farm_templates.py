"""What the worker template's tests read of processes: parents, command lines, templates."""

from __future__ import annotations

import re
from pathlib import Path

import farm_jobs
from farm_testkit import Farm, SupervisorProcess, start_supervisor, wait_until

from fast_app.core.queue import queue

__all__ = ["command_line", "parent_of", "run_jobs", "start_forked_farm", "template_pids"]


def parent_of(pid: int) -> int:
    """The parent's pid, from ``/proc/<pid>/stat``."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def command_line(pid: int) -> list[str]:
    """Its command line, from ``/proc/<pid>/cmdline`` (a fork keeps its parent's)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def template_pids(supervisor: SupervisorProcess) -> list[int]:
    """The templates that said they were ready, in order."""
    return [
        int(pid)
        for pid in re.findall(r"worker template (?:ready|restarted) \(pid (\d+)", supervisor.log())
    ]


async def run_jobs(farm: Farm, *tags: str) -> set[int]:
    """Queue one ``record`` job per tag; the pids that ran them, once all ran."""
    for tag in tags:
        await queue(farm_jobs.record, str(farm.results), tag)
    await wait_until(
        lambda: set(tags) <= set(farm.tags("ran")), timeout=30, message=f"jobs {tags} to run"
    )
    return {e["pid"] for e in farm.events("ran") if e["tag"] in tags}


async def start_forked_farm(farm: Farm) -> tuple[SupervisorProcess, int]:
    """A supervisor (default worker start) once its template is ready and its 2 workers
    started; the supervisor and its template's pid."""
    supervisor = await start_supervisor(farm, "--min-workers", "2", "--max-workers", "2")
    await wait_until(lambda: template_pids(supervisor), timeout=30, message="a template")
    await wait_until(
        lambda: len(supervisor.live_worker_pids()) == 2, timeout=30, message="2 workers"
    )
    [template] = template_pids(supervisor)
    return supervisor, template
