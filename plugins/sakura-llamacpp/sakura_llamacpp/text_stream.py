"""Token bytes → text deltas: whole UTF-8 characters only, stop strings held back and never emitted."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from sakura_core.stop_strings import StopStringFilter


class TextStream:
    """Feed each generated token's bytes; get the text that may be sent now.

    A character split across tokens waits for its last byte; bytes that can never be UTF-8 become U+FFFD.
    ``stopped`` turns true when a stop string appeared; the text from it on is dropped.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._filter = StopStringFilter(stop)

    @property
    def stopped(self) -> bool:
        """True once a stop string was found."""
        return self._filter.stopped

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is safe to emit."""
        return self._filter.feed(self._decoder.decode(piece))

    def finish(self) -> str:
        """The held-back text at the end of a generation. An unfinished character is dropped, not guessed."""
        self._decoder.reset()
        return self._filter.flush()
