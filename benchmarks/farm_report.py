"""The table benchmarks/farm_throughput.py prints: the farm beside raw aio-pika, row by row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from farm_lifecycle import (
    BURST_JOB_S,
    BURST_JOBS,
    BURST_MAX_WORKERS,
    Results,
    mode_label,
    scaling_defaults,
)

LABEL_WIDTH = 56
DASH = "—"


def cell(value: float | None, fmt: str) -> str:
    """``value`` formatted, or a dash as wide when it could not be measured."""
    if value is None:
        width = len(fmt.format(0.0))
        return f"{DASH:>{width}}"
    return fmt.format(value)


def ratio(ours: float | None, raw: float | None) -> float | None:
    """``ours / raw``, or ``None`` when either is missing or raw is 0."""
    if ours is None or raw is None or raw == 0:
        return None
    return ours / raw


def verdict(met: bool | None) -> str:
    """``yes``, ``NO``, or a dash when the figures are missing."""
    return DASH if met is None else "yes" if met else "NO"


@dataclass(frozen=True)
class Row:
    """One line of the table: the farm's figure (key) beside raw's (key, or none)."""

    label: str
    ours: str
    raw: str | None
    fmt: str
    scale: float = 1.0


def rows(modes: Sequence[str | None]) -> list[Row]:
    """Every row, in the order of the script's docstring; per start mode where it applies."""
    labels = [mode_label(mode) for mode in modes]
    ms, fourth = 1000.0, f"{BURST_MAX_WORKERS}th worker"
    table = [
        Row("1. drain rate (jobs/s)", "drain_farm", "drain_raw", "{:12.0f}"),
        Row("2. worker CPU per job, excl. startup (µs)", "cpu_us_farm", "cpu_us_raw", "{:12.0f}"),
        Row(
            "2. worker CPU per job, incl. startup (µs)",
            "cpu_total_us_farm",
            "cpu_total_us_raw",
            "{:12.0f}",
        ),
    ]
    for m in labels:
        table.append(
            Row(
                f"3. start to 2 consuming (ms) [{m}]", f"start_s_{m}", "start_s_raw", "{:12.0f}", ms
            )
        )
    for m in labels:
        table += [
            Row(f"4. idle memory, RSS sum (MB) [{m}]", f"rss_mb_{m}", "rss_mb_raw", "{:12.1f}"),
            Row(f"4. idle memory, PSS sum (MB) [{m}]", f"pss_mb_{m}", "pss_mb_raw", "{:12.1f}"),
        ]
    table += [
        Row("5. enqueue, concurrent queue() (jobs/s)", "enqueue_ours", "enqueue_raw", "{:12.0f}"),
        Row(
            "5. enqueue, one queue() at a time (jobs/s)",
            "enqueue_seq_ours",
            "enqueue_seq_raw",
            "{:12.0f}",
        ),
        Row("6. latency p50 (ms)", "p50_ms_farm", "p50_ms_raw", "{:12.2f}"),
        Row("6. latency p99 (ms)", "p99_ms_farm", "p99_ms_raw", "{:12.2f}"),
    ]
    for m in labels:
        table += [
            Row(
                f"7. spawn decision to consuming p95 (ms) [{m}]",
                f"spawn_s_{m}",
                None,
                "{:12.0f}",
                ms,
            ),
            Row(
                f"7.   seen as consumer count (ms) [{m}]",
                f"spawn_counted_s_{m}",
                None,
                "{:12.0f}",
                ms,
            ),
        ]
    for m in labels:
        table += [
            Row(
                f"8. burst: first job to {fourth} (s) [{m}]", f"all_workers_s_{m}", None, "{:12.2f}"
            ),
            Row(f"8. burst: first job to drained (s) [{m}]", f"drained_s_{m}", None, "{:12.2f}"),
        ]
    return table


def scaled(value: float | None, by: float) -> float | None:
    """``value * by``, or ``None``."""
    return None if value is None else value * by


def print_row(row: Row, results: Results) -> None:
    """One row: the farm's figure, raw's, their ratio."""
    ours = scaled(results[row.ours], row.scale)
    raw = None if row.raw is None else scaled(results.get(row.raw), row.scale)
    print(
        f"{row.label:{LABEL_WIDTH}}{cell(ours, row.fmt)}{cell(raw, row.fmt):>14}"
        f"{cell(ratio(ours, raw), '{:8.2f}')}"
    )


def passes(value: float | None, test: Callable[[float], bool]) -> bool | None:
    """``test(value)``, or ``None`` when the value could not be measured."""
    return None if value is None else test(value)


def difference(ours: float | None, raw: float | None) -> float | None:
    """``ours - raw``, or ``None`` when either is missing."""
    return None if ours is None or raw is None else ours - raw


def targets(results: Results, modes: Sequence[str | None]) -> list[str]:
    """Each target of the issue, ``name: yes/NO`` (a dash: not measurable); those whose
    rows the run did not measure are left out."""

    def versus(ours: str, raw: str) -> tuple[float | None, float | None]:
        return results.get(ours), results.get(raw)

    checks: list[tuple[str, tuple[str, ...], bool | None]] = [
        (
            "drain >= 0.9x raw",
            ("drain_farm",),
            passes(ratio(*versus("drain_farm", "drain_raw")), lambda r: r >= 0.9),
        ),
        (
            "worker CPU/job excluding startup <= 1.1x raw",
            ("cpu_us_farm",),
            passes(ratio(*versus("cpu_us_farm", "cpu_us_raw")), lambda r: r <= 1.1),
        ),
        (
            "latency p99 within 0.3 ms of raw",
            ("p99_ms_farm",),
            passes(difference(*versus("p99_ms_farm", "p99_ms_raw")), lambda d: d <= 0.3),
        ),
    ]
    for mode in (mode_label(m) for m in modes):
        pss, spawn = f"pss_mb_{mode}", f"spawn_s_{mode}"
        checks += [
            (
                f"supervisor + 2 workers (+ template) PSS <= 1.1x raw [{mode}]",
                (pss,),
                passes(ratio(*versus(pss, "pss_mb_raw")), lambda r: r <= 1.1),
            ),
            (
                f"new worker consuming within 150 ms of the decision, p95 [{mode}]",
                (spawn,),
                passes(results.get(spawn), lambda s: s <= 0.150),
            ),
        ]
    return [
        f"{name}: {verdict(met)}" for name, keys, met in checks if all(k in results for k in keys)
    ]


def report(
    queue_type: str,
    jobs: int,
    rounds: int,
    bursts: int,
    results: Results,
    notes: Sequence[str],
    modes: Sequence[str | None],
) -> None:
    """Print the table of one queue type: every row measured, raw beside, their ratio,
    the notes, then the targets."""
    throughput = (
        f"{jobs} no-op jobs, 2 worker processes, prefetch 16; rates and CPU best of "
        f"{rounds} rounds, "
        if "drain_farm" in results
        else ""
    )
    print(
        f"\n{queue_type} queues: {throughput}starts median of {rounds}, "
        f"{bursts} bursts per start mode"
    )
    print(f"{'':{LABEL_WIDTH}}{'fast-app':>12}{'raw aio-pika':>14}{'ratio':>8}")
    for row in rows(modes):
        if row.ours in results:
            print_row(row, results)
    if modes == [None]:
        print(
            "start mode: fresh (the installed fast-app work has no --worker-start: each "
            "worker is a new interpreter)"
        )
    print(
        f"rows 7-8: bursts of {BURST_JOBS} jobs of {BURST_JOB_S * 1000:.0f} ms to an idle "
        f"fast-app work of 1 to {BURST_MAX_WORKERS} workers; {scaling_defaults()}"
    )
    print(
        "row 7: times are when each log line reached the benchmark (one clock for all "
        "processes); the count row polls the queue's consumers every 5 ms"
    )
    for note in notes:
        print(note)
    print("targets:")
    for line in targets(results, modes):
        print(f"  {line}")
