"""The figures of benchmarks/cluster_capacity.py, kept round by round, and its table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from farm_report import cell, ratio

#: The columns of CPU per 1,000 messages: each Erlang VM, then the clients by role.
VMS = ("node 1", "node 2", "node 3", "single")
CLIENTS = ("publishers", "consumers")


@dataclass(frozen=True)
class Round:
    """One round of one case: messages, seconds, and CPU seconds used meanwhile."""

    messages: int
    elapsed: float
    cpu: dict[str, float]  # each VM, "publishers", "consumers", "benchmark" (the script)
    machine: float  # every core, every process: ours and the machine's other work


@dataclass
class Figures:
    """One case's figures over the rounds, one entry per round in each list."""

    rates: list[float] = field(default_factory=list)
    #: CPU seconds per 1,000 messages, by process (as in ``Round.cpu``).
    cpu: dict[str, list[float]] = field(default_factory=dict)
    ours_busy: list[float] = field(default_factory=list)  # fraction of the machine's cores
    all_busy: list[float] = field(default_factory=list)

    def keep(self, measured: Round, cores: int) -> None:
        """Add one round: its rate, CPU per 1,000 messages and how busy the cores were."""
        self.rates.append(measured.messages / measured.elapsed)
        for name, used in measured.cpu.items():
            self.cpu.setdefault(name, []).append(used * 1000 / measured.messages)
        capacity = measured.elapsed * cores
        self.ours_busy.append(sum(measured.cpu.values()) / capacity)
        self.all_busy.append(measured.machine / capacity)


def median(values: Sequence[float]) -> float | None:
    """The median, ``None`` without values."""
    return statistics.median(values) if values else None


def spread(values: Sequence[float]) -> float | None:
    """Half the range of ``values`` over their median: how far the rounds were apart."""
    middle = median(values)
    return (max(values) - min(values)) / 2 / middle if middle else None


def report(
    cases: Sequence[tuple[str, str]],
    paths: Sequence[str],
    figures: dict[tuple[str, str], Figures],
    header: Sequence[str],
    cores: int,
) -> None:
    """Print the header, one line per case (key, label) and path, and the notes."""
    print("\n".join(header))
    print(f"{'':61}{'CPU s per 1,000 messages':^{8 * len(VMS) + 11 * len(CLIENTS)}}")
    print(
        f"{'case':34}{'path':>9}{'msg/s':>7}{'±':>5}{'vs d':>6}"
        + "".join(f"{name:>8}" for name in VMS)
        + "".join(f"{name:>11}" for name in CLIENTS)
        + f"{'busy ours/all':>15}"
    )
    for key, label in cases:
        for path in paths:
            kept = figures[(path, key)]
            rate = median(kept.rates)
            baseline = median(figures[(path, "d")].rates) if (path, "d") in figures else None
            busy = f"{median(kept.ours_busy) or 0:.0%}/{median(kept.all_busy) or 0:.0%}"
            print(
                f"{label:34}{path:>9}{cell(rate, '{:7.0f}')}{cell(spread(kept.rates), '{:5.0%}')}"
                f"{cell(ratio(rate, baseline), '{:6.2f}')}"
                + "".join(cell(median(kept.cpu[name]), "{:8.3f}") for name in VMS)
                + "".join(cell(median(kept.cpu[name]), "{:11.3f}") for name in CLIENTS)
                + f"{busy:>15}"
            )
    others = [
        every - ours
        for kept in figures.values()
        for every, ours in zip(kept.all_busy, kept.ours_busy, strict=True)
    ]
    print()
    print(NOTES.format(cores=cores, others=median(others) or 0))


NOTES = """\
msg/s: median of the rounds, ± half their range. CPU s per 1,000 messages: medians too.

Notes (what bounds these figures on this machine):
- {cores} cores shared by everything: the 3 cluster VMs, the single node, 6 client
  processes, and whatever else the machine runs: busy "all" above "ours" is that other
  work (and the kernel's loopback networking), {others:.0%} of the cores in the median case
  of this run. When "all" is near 100 %, msg/s is what the cores allowed, not what
  RabbitMQ allows: a lower bound for a node with cores of its own. The CPU per 1,000
  messages is the sturdier figure; it still includes the VMs' overhead under contention.
- b and c on one host do not measure scale-out: three leaders on three VMs share the
  same {cores} cores, so b can gain only what one VM could not use of them; what b and c
  measure is the cost of coordination (three Raft groups, each replicating to 2
  followers, and in c the forwarding of two thirds of the traffic between nodes),
  spread over the VMs: compare the sum of their VM columns with a's.
- Publishers: raw aio-pika makes one publish call and awaits one confirm per message,
  fast-app's queue_many writes up to 1,000 messages at once; compare the publishers
  column, and the VMs' columns, which are higher too for raw.
- a against d is the price of 3 replicas for one queue: every message is written and
  replicated by 3 VMs instead of 1, all on these cores and one disk.
- Idle VMs (the single node during a-c, the cluster during d) still use a little CPU;
  it is in their columns.
"""
