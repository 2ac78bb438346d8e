"""The help lists each key once, as the footer shows it."""

from fast_app.farm_tui.app import FarmApp
from fast_app.farm_tui.sample import sample_snapshot
from fast_app.farm_tui.static import StaticFarm


def test_a_key_bound_under_two_names_is_listed_once() -> None:
    # "+" is bound as plus and equals_sign: one line, not two
    app = FarmApp(StaticFarm([sample_snapshot(0.0)]), clock=lambda: 0.0)

    lines = app.help_lines()

    assert len(lines) == len(set(lines))
    assert [line for line in lines if line[1] == "+"] == [("Everywhere", "+", "Min+")]
