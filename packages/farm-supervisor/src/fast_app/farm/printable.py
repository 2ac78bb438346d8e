"""Text from messages, made safe to print on a terminal or in a log line.

Ids, function paths, error messages and tracebacks can come from anyone who can publish
to the broker. Printed raw, an ESC or OSC sequence would drive the operator's terminal
(retitle it, hide lines, write to the clipboard) and a newline would forge a log line.
``printable`` shows every such character as an escape instead (``\\x1b``, ``\\n``).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators and bidi
# overrides (which reorder what a terminal shows).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every control character escaped.

    Args:
        text: untrusted text.
        keep_lines: keep newlines and tabs (a traceback shown on lines of its own);
            otherwise they are escaped too, so that the text stays on one line.
    """
    pattern = _UNSAFE_KEEPING_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape, text)
