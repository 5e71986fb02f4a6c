"""A line-based file's lines and its line ends, so that it is written back with the line ends it came with."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class LineLayout:
    """How a text's lines are ended: ``\\r\\n`` or ``\\n``, and whether the last line is."""

    newline: str
    ends_with_newline: bool

    @staticmethod
    def split(text: str) -> tuple[list[str], LineLayout]:
        """The lines of ``text`` (none for an empty text) and its layout."""
        layout = LineLayout("\r\n" if "\r\n" in text else "\n", text.endswith(("\n", "\r")))
        if text == "":
            return [], layout
        return _LINE_BREAK.split(text.removesuffix("\r\n").removesuffix("\n").removesuffix("\r")), layout

    def join(self, lines: Sequence[str]) -> str:
        """``lines`` as a text with this layout's line ends."""
        return self.newline.join(lines) + (self.newline if self.ends_with_newline and lines else "")
