"""The progress bar: characters done (its ETA), chunks done, generation speed. Silent when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A tqdm bar over the characters of every file of the run."""

    def __init__(self, total_chars: int, total_chunks: int, *, enabled: bool | None = None) -> None:
        from tqdm import tqdm

        # disable=None: tqdm turns itself off when stderr is not a terminal
        self.bar: Any = tqdm(
            total=total_chars,
            unit="char",
            unit_scale=True,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=None if enabled is None else not enabled,
            desc="translating",
        )
        self.total_chunks = total_chunks
        self.chunks = 0
        self.tokens = 0
        self.started = time.perf_counter()

    def describe(self, name: str) -> None:
        """Show the file being translated."""
        self.bar.set_description_str(name if len(name) <= 30 else "…" + name[-29:])

    def advance(self, chars: int, completion_tokens: int = 0) -> None:
        """One chunk more is done (from the cache when it generated no tokens)."""
        self.chunks += 1
        self.tokens += completion_tokens
        seconds = time.perf_counter() - self.started
        rate = self.tokens / seconds if seconds > 0 else 0.0
        self.bar.set_postfix_str(f"{self.chunks}/{self.total_chunks} chunks, {rate:.1f} tok/s", refresh=False)
        self.bar.update(chars)

    def close(self) -> None:
        self.bar.close()
