"""The resume cache: every finished chunk, saved the moment it finishes, in a JSON-lines file beside the output.

A chunk's key is a hash of its text, the glossary entries sent with it, the model and every setting that shapes
the answer, so a changed glossary entry re-translates only the chunks it occurs in. Each record is one line,
written and flushed at once: a killed process loses at most the chunk it was writing, and a torn last line is
ignored when the file is read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, Field, ValidationError

logger = logging.getLogger(__name__)

CACHE_SUFFIX = ".sakura-cache.jsonl"


class CachedFlag(BaseModel):
    """A line of a chunk kept as its source because its translation failed the checks."""

    line: int = Field(description="The line's index in its chunk, from 0.")
    reasons: list[str]
    output: str = Field("", description="The model's last answer for the line (empty when there was none).")


class CachedChunk(BaseModel):
    """A finished chunk: its translation (one line per source line), the lines flagged, and what it cost."""

    key: str
    translation: str
    #: False only in caches written before mismatched chunks were split: such a chunk is translated again.
    lines_match: bool = True
    flags: list[CachedFlag] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generations: int = 1


def chunk_key(*, text: str, glossary: str, model: str, settings: dict[str, Any]) -> str:
    """The cache key of a chunk: its text, its glossary lines, the model and the settings."""
    payload = json.dumps(
        {"text": text, "glossary": glossary, "model": model, "settings": settings},
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cache_path_for(output: Path) -> Path:
    """Where the cache of ``output`` lives: beside it."""
    return output.with_name(output.name + CACHE_SUFFIX)


class ChunkCache:
    """Finished chunks of one output file, read at start and appended to as chunks finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chunks: dict[str, CachedChunk] = {}
        self._file: IO[str] | None = None
        if path.exists():
            self._read()

    def _read(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    chunk = CachedChunk.model_validate_json(line)
                except ValidationError:  # a line torn by a kill, or from another version: translate it again
                    continue
                self.chunks[chunk.key] = chunk
        logger.debug("%s: %d finished chunks", self.path, len(self.chunks))

    def __len__(self) -> int:
        return len(self.chunks)

    def get(self, key: str) -> CachedChunk | None:
        return self.chunks.get(key)

    def put(self, chunk: CachedChunk) -> None:
        """Save ``chunk`` now (written and flushed before this returns)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            if self._file.tell() > 0 and not self._ends_with_newline():
                self._file.write("\n")  # after a torn line, start a fresh one
        self._file.write(chunk.model_dump_json() + "\n")
        self._file.flush()
        self.chunks[chunk.key] = chunk

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as data:
            data.seek(-1, 2)
            return data.read(1) == b"\n"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Delete the cache file (after the whole run succeeded)."""
        self.close()
        self.path.unlink(missing_ok=True)
