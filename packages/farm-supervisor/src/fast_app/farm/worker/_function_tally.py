"""Each function's runs on this worker since the last heartbeat: outcomes and runtimes."""

from __future__ import annotations

from fast_app.farm.messages.job_figures import FUNCTIONS_LISTED, OTHER_FUNCTIONS, FunctionRuns
from fast_app.farm.run_tallies import RunTally

__all__ = ["FunctionTally"]


class FunctionTally:
    """Runs by function, kept until the next heartbeat takes them.

    Only runs whose code started are tallied: their function passed the allow-list, so
    the names are the application's own and few.
    """

    def __init__(self) -> None:
        self._by_function: dict[str, RunTally] = {}

    def of(self, function: str) -> RunTally:
        """The tally of ``function`` (created empty)."""
        tally = self._by_function.get(function)
        if tally is None:
            tally = self._by_function[function] = RunTally()
        return tally

    def take(self) -> list[FunctionRuns]:
        """The tallies since the last call, busiest first, at most ``FUNCTIONS_LISTED``
        and the rest summed as ``OTHER_FUNCTIONS``; forgets them."""
        tallies, self._by_function = self._by_function, {}
        busiest = sorted(tallies.items(), key=lambda item: item[1].runs, reverse=True)
        listed = [tally.as_runs(function) for function, tally in busiest[:FUNCTIONS_LISTED]]
        if len(busiest) > FUNCTIONS_LISTED:
            other = RunTally()
            for _, tally in busiest[FUNCTIONS_LISTED:]:
                other.merge(tally)
            listed.append(other.as_runs(OTHER_FUNCTIONS))
        return listed
