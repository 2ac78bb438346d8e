"""CPU time and memory of benchmark processes, from the kernel's own accounting in /proc."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    # The name is in parentheses and may itself hold spaces and parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU time the process used so far, user and system (``utime + stime``)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds_at_exit(process: subprocess.Popen[bytes]) -> float:
    """Wait for ``process`` to end; the CPU time it used in all, start to exit.

    Read while it is a zombie (ended, not reaped yet: ``WNOWAIT``), when ``/proc`` still
    holds its final ``utime + stime``; then reaped.
    """
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    used = cpu_seconds(process.pid)
    process.wait()
    return used


def parent_of(pid: int) -> int:
    """The process's parent id."""
    return int(_stat_fields(pid)[1])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children...), found by parent id."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = parent_of(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return sorted(found)


def _status_kb(pid: int, field: str, file: str) -> int:
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/{file}")


def rss_mb(pid: int) -> float:
    """Resident set size: every page mapped, shared ones counted in full."""
    return _status_kb(pid, "VmRSS", "status") / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size: each shared page divided among the processes sharing it."""
    return _status_kb(pid, "Pss", "smaps_rollup") / 1024


def private_mb(pid: int) -> float:
    """Pages no other process maps (``Private_Clean + Private_Dirty``): what the process
    costs beyond what it shares, e.g. with the template it was forked from."""
    return (
        _status_kb(pid, "Private_Clean", "smaps_rollup")
        + _status_kb(pid, "Private_Dirty", "smaps_rollup")
    ) / 1024


def command_line(pid: int) -> list[str]:
    """The process's arguments."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory, named by its role."""

    role: str
    rss_mb: float
    pss_mb: float
    private_mb: float


@dataclass(frozen=True)
class Memory:
    """The memory of a group of processes (a farm, or raw consumers)."""

    processes: list[ProcessMemory]

    @property
    def rss_mb(self) -> float:
        """Sum of the RSS: shared pages counted once per process."""
        return sum(p.rss_mb for p in self.processes)

    @property
    def pss_mb(self) -> float:
        """Sum of the PSS: what the group costs the machine."""
        return sum(p.pss_mb for p in self.processes)

    def describe(self) -> str:
        """Each process's RSS / PSS / private, e.g. ``supervisor 40.1/35.2/30.0``."""
        return ", ".join(
            f"{p.role} {p.rss_mb:.1f}/{p.pss_mb:.1f}/{p.private_mb:.1f}" for p in self.processes
        )


def memory_of(roles: dict[int, str]) -> Memory:
    """The memory of the processes ``roles`` names, by pid."""
    return Memory(
        [
            ProcessMemory(role, rss_mb(pid), pss_mb(pid), private_mb(pid))
            for pid, role in roles.items()
        ]
    )
