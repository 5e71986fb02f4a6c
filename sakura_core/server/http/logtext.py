"""Client text in log lines: control characters escaped, so that a URL cannot forge or colour log lines."""

from __future__ import annotations

import re

#: C0 and C1 controls (newlines, ESC), DEL, the Unicode line and paragraph separators, lone surrogates (which a
#: UTF-8 log file cannot even hold) and the backslash (so an escape in the log is never the client's own text).
_UNSAFE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff\\\\]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_for_log(text: str) -> str:
    """``text`` with every character that could break or forge a log line written as ``\\xNN``/``\\uNNNN``."""
    return _UNSAFE.sub(_escape, text)
