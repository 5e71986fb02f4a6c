"""Cutting a sequence of lines into chunks of at most ``max_chars`` characters, at line ends."""

from __future__ import annotations

from collections.abc import Sequence

#: SakuraLLM's own scripts send at most this many characters per request.
DEFAULT_CHUNK_CHARS = 512


def chunk_lines(lines: Sequence[str], max_chars: int = DEFAULT_CHUNK_CHARS) -> list[range]:
    """Consecutive ranges of ``lines`` whose texts, joined with newlines, hold at most ``max_chars`` characters.

    Lines are never split: a line longer than ``max_chars`` is a chunk of its own.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    chunks: list[range] = []
    start, size = 0, 0
    for index, line in enumerate(lines):
        added = len(line) + (1 if index > start else 0)
        if index > start and size + added > max_chars:
            chunks.append(range(start, index))
            start, added = index, len(line)
            size = 0
        size += added
    if start < len(lines):
        chunks.append(range(start, len(lines)))
    return chunks
