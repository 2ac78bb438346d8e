"""N supervisors scaling one shared queue with the real policy, simulated in seconds.

The command line: the scenarios for each N, a table per scenario, exit 1 if a bound broke.
The first line above is the command's description (``--help``), as it is the package's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fast_app.farm.testing.scaling_simulation.checks import bounds, check, seconds
from fast_app.farm.testing.scaling_simulation.model import FarmModel, scenarios
from fast_app.farm.testing.scaling_simulation.outcome import Outcome
from fast_app.farm.testing.scaling_simulation.simulate import run


def _table(outcomes: Sequence[Outcome], model: FarmModel) -> str:
    header = (
        f"{'N':>4} {'need':>5} {'peak':>5} {'over':>5} {'bound':>5} {'reach s':>8} "
        f"{'drain s':>8} {'turns':>5} {'regrow':>6} {'settled':>9} {'max ready':>9} "
        f"{'lost':>4} {'wall s':>6}  verdict"
    )
    lines = [header]
    for outcome in outcomes:
        limit = bounds(outcome.scenario, model)
        broken = check(outcome, model)
        low, high = outcome.settled
        lines.append(
            f"{outcome.scenario.supervisors:>4} {outcome.need:>5} {outcome.peak:>5} "
            f"{outcome.overshoot:>5.2f} {limit.peak:>5} {seconds(outcome.reach_s):>8} "
            f"{seconds(outcome.drain_s):>8} {outcome.direction_changes:>5} "
            f"{outcome.regrowth:>6} {f'{low}..{high}':>9} {outcome.max_ready:>9} "
            f"{outcome.lost:>4} {outcome.wall_s:>6.2f}  {'; '.join(broken) or 'ok'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios for each N and print a table per scenario; 1 if a bound broke."""
    parser = argparse.ArgumentParser(
        prog="python -m fast_app.farm.testing.scaling_simulation",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--supervisors", default="1,10,100", help="comma-separated N values")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--startup-s", type=float, default=FarmModel().startup_s)
    parser.add_argument(
        "--fixed-load",
        type=int,
        metavar="M",
        help="size every load for M supervisors whatever N, each starting with no worker",
    )
    arguments = parser.parse_args(argv)
    try:
        counts = [int(part) for part in arguments.supervisors.split(",")]
    except ValueError:
        parser.error(f"--supervisors takes integers, got {arguments.supervisors!r}")
    if not counts or min(counts) < 1 or max(counts) > 1000:
        parser.error("--supervisors takes counts from 1 to 1000")
    if arguments.fixed_load is not None and not 1 <= arguments.fixed_load <= 1000:
        parser.error("--fixed-load takes a count from 1 to 1000")
    model = FarmModel(startup_s=arguments.startup_s)
    results: dict[str, list[Outcome]] = {}
    for count in counts:
        # Past 100 supervisors a coarser step keeps the run to seconds.
        scaled = model
        for scenario in scenarios(count, scaled, arguments.fixed_load):
            results.setdefault(scenario.name, []).append(run(scenario, scaled, arguments.seed))
    failed = False
    for name, outcomes in results.items():
        print(f"\n== {name} (seed {arguments.seed}, start-up {model.startup_s:g}s) ==")
        print(_table(outcomes, model))
        failed = failed or any(check(outcome, model) for outcome in outcomes)
    return 1 if failed else 0
