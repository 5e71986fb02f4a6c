"""Stop-string matching over a stream of text pieces, shared by engines that decode token by token."""

from __future__ import annotations

from collections.abc import Sequence


class StopStringFilter:
    """Feed text pieces; get back the text that is safe to emit.

    Text that could be the start of a stop string is held back until it is known not to be one. When a stop
    string is found, everything from it on is dropped and ``stopped`` becomes true.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = [s for s in stop if s]
        #: The characters stop strings start with: text without any of them can be emitted at once.
        self._firsts = tuple({s[0] for s in self._stop})
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add ``piece``; return what can be emitted now."""
        if self.stopped:
            return ""
        if not self._held:
            for first in self._firsts:
                if first in piece:
                    break
            else:  # no stop string can start in this piece (the usual case): nothing to hold back
                return piece
        text = self._held + piece
        if not self._stop:
            self._held = ""
            return text
        cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = 0
        for stop in self._stop:
            for length in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:length]):
                    keep = max(keep, length)
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text, at the end of a generation that did not stop on a stop string."""
        text, self._held = self._held, ""
        return "" if self.stopped else text
