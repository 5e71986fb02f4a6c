"""Dropping a reasoning block that opens a reply, over a stream of text pieces.

Qwen3-based models (Sakura v1.5) can open a reply with ``<think>…</think>``. Their prompt turns thinking off the
way the model's own chat template does; this filter makes sure no client ever sees such a block anyway.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from sakura_core.types import Delta

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: What may stand before ``<think>`` and is dropped after ``</think>``: ASCII whitespace only, never the ideographic
#: space (U+3000) that Chinese and Japanese text indents with.
BLANKS = " \t\r\n"


class LeadingThinkFilter:
    """Feed reply pieces; get back the reply without a ``<think>…</think>`` block at its start.

    A reply that begins (after blanks) with ``<think>`` loses everything up to ``</think>`` and the blanks after it;
    a block never closed is dropped whole. Any other reply passes unchanged: its first characters are held back
    only while they could still be the start of ``<think>``.
    """

    def __init__(self) -> None:
        self._held = ""
        self._state: Literal["start", "thinking", "after", "passing"] = "start"

    def feed(self, piece: str) -> str:
        """Add ``piece``; return what can be emitted now."""
        if self._state == "passing":
            return piece
        text, self._held = self._held + piece, ""
        if self._state == "start":
            opening = text.lstrip(BLANKS)
            if opening.startswith(THINK_OPEN):
                self._state, text = "thinking", opening[len(THINK_OPEN) :]
            elif THINK_OPEN.startswith(opening):  # blanks so far, or a beginning of "<think>"
                self._held = text
                return ""
            else:
                self._state = "passing"
                return text
        if self._state == "thinking":
            end = text.find(THINK_CLOSE)
            if end < 0:
                self._held = text[-(len(THINK_CLOSE) - 1) :]  # the start of a "</think>" split across pieces
                return ""
            self._state, text = "after", text[end + len(THINK_CLOSE) :]
        answer = text.lstrip(BLANKS)
        if answer:
            self._state = "passing"
        return answer

    def flush(self) -> str:
        """What is still held back, at the end of the reply: a beginning that never became ``<think>``."""
        text, self._held = self._held, ""
        return text if self._state == "start" else ""

    def filter(self, delta: Delta) -> Delta:
        """``delta`` with its text filtered; the reply's last delta (``finish_reason`` set) also gets the flush."""
        text = self.feed(delta.text)
        if delta.finish_reason is not None:
            text += self.flush()
        return delta if text == delta.text else replace(delta, text=text)
