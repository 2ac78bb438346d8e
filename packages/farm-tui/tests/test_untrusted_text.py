"""What a dead letter holds is shown escaped: it cannot drive the operator's terminal."""

from __future__ import annotations

import time

from fast_app.farm.dead_letters import DeadLetter
from fast_app.farm_tui.screens.dead_letters import letter_details, letter_rows

HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202e[bold red]markup[/]"


def test_a_forged_dead_letter_is_shown_escaped_and_never_as_markup() -> None:
    # Given a dead letter whose every text field carries escape sequences and markup
    letter = DeadLetter(
        job_id="a" + HOSTILE,
        function="app." + HOSTILE,
        reason=HOSTILE,
        error_type="Error" + HOSTILE,
        error="line one\nline two" + HOSTILE,
        traceback="Traceback\n  " + HOSTILE,
        attempts=1,
        worker=HOSTILE,
        failed_at=None,
        body=b"{}",
        args=[HOSTILE],
        kwargs={"k": HOSTILE},
        context={HOSTILE: HOSTILE},
    )

    # When the dead-letter screen renders it, in the table and in full
    details = letter_details(letter, time.time()).plain
    cells = [text for _, row in letter_rows([letter], time.time()) for text, _ in row]

    # Then no control character reaches the terminal, and the markup stays text
    for shown in [details, *cells]:
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b]0;owned\\x07" in details
    assert "[bold red]markup[/]" in details
    assert "Traceback\n" in details  # a traceback keeps its lines
