"""Translating one document: chunks, context, glossary, retries, parallel sections, the resume cache.

A document's segments (one line each) are cut into chunks of at most ``chunk_chars`` characters at line ends.
Each chunk is sent with the glossary entries that occur in it and, as context, the previous chunk's translation,
so chunks depend on the one before. To keep every slot of the server busy anyway, each group of chunks is cut
into as many consecutive sections as there are slots; sections run side by side, and inside a section chunks run
in order, each with its predecessor as context. The result does not depend on timing: a run interrupted and
resumed from the cache produces what an uninterrupted run produces.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from sakura_core.degeneration import DEGENERATION_RETRY_PENALTIES, Translation, translate_with
from sakura_core.prompts import GlossaryEntry, format_glossary
from sakura_core.types import SamplingParams
from sakura_translate.backends import Backend
from sakura_translate.cache import CachedChunk, ChunkCache, chunk_key
from sakura_translate.chunking import chunk_lines
from sakura_translate.formats import Document, Translations
from sakura_translate.glossary import Glossary
from sakura_translate.progress import Progress
from sakura_translate.report import ChunkStats, Mismatch

_SHOWN_CHARS = 24
_MAX_TOKENS_SLACK = 32


@dataclass(frozen=True)
class Settings:
    """How chunks are made and sampled; everything here but ``slots`` is part of each chunk's cache key."""

    chunk_chars: int = 512
    params: SamplingParams = field(default_factory=SamplingParams)
    #: Tokens a chunk may generate; None: the chunk's characters and a little more, at least ``chunk_chars``
    #: (SakuraLLM's scripts allow 512 tokens for 512 characters; Chinese takes fewer tokens than characters).
    max_tokens: int | None = None
    line_retry: bool = True

    def max_tokens_for(self, text: str) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return max(self.chunk_chars, len(text) + _MAX_TOKENS_SLACK)

    def key_settings(self) -> dict[str, object]:
        params = self.params.model_dump(exclude={"max_tokens", "stop"})
        return {"chunk_chars": self.chunk_chars, "max_tokens": self.max_tokens, "params": params}


@dataclass
class Chunk:
    """Consecutive segments of one group, sent in one request."""

    number: int
    group: int
    segments: range
    text: str
    glossary: list[GlossaryEntry]
    key: str


def split_translation(text: str) -> list[str]:
    """A model's answer as lines: blank lines and trailing spaces dropped."""
    return [line.rstrip() for line in text.strip("\n").split("\n") if line.strip()]


class Translator:
    """Translates documents through one backend, at most ``slots`` generations at a time."""

    def __init__(
        self, backend: Backend, glossary: Glossary, settings: Settings, slots: int, progress: Progress
    ) -> None:
        self.backend = backend
        self.glossary = glossary
        self.settings = settings
        self.slots = slots
        self.progress = progress
        self._semaphore = asyncio.Semaphore(slots)
        self._model_key = f"{backend.model_id}|{backend.prompt_format.name}"

    def plan(self, document: Document) -> list[list[Chunk]]:
        """The chunks of each group of ``document``."""
        planned: list[list[Chunk]] = []
        number = 0
        for group_index, group in enumerate(document.groups):
            chunks = []
            for segments in chunk_lines(group, self.settings.chunk_chars):
                number += 1
                text = "\n".join(group[i] for i in segments)
                entries = self.glossary.for_text(text)
                key = chunk_key(
                    text=text,
                    glossary=format_glossary(entries),
                    model=self._model_key,
                    settings=self.settings.key_settings(),
                )
                chunks.append(Chunk(number, group_index, segments, text, entries, key))
            planned.append(chunks)
        return planned

    def sections(self, planned: list[list[Chunk]]) -> list[list[Chunk]]:
        """Consecutive runs of chunks, as many in all as there are slots (each group cut evenly)."""
        total = sum(len(chunks) for chunks in planned)
        if total == 0:
            return []
        longest = math.ceil(total / self.slots)
        sections = []
        for chunks in planned:
            if not chunks:
                continue
            count = math.ceil(len(chunks) / longest)
            size, extra = divmod(len(chunks), count)
            start = 0
            for index in range(count):
                end = start + size + (1 if index < extra else 0)
                sections.append(chunks[start:end])
                start = end
        return sections

    async def translate(self, document: Document, cache: ChunkCache) -> tuple[Translations, ChunkStats, list[Mismatch]]:
        """Translate ``document``; every finished chunk is saved in ``cache`` as it finishes."""
        planned = self.plan(document)
        results: dict[int, CachedChunk] = {}
        stats = ChunkStats()
        running: dict[str, asyncio.Task[CachedChunk]] = {}

        async def one(chunk: Chunk, history: str | None) -> CachedChunk:
            cached = cache.get(chunk.key)
            if cached is None and chunk.key in running:  # the same text elsewhere in the file, being translated
                cached = await running[chunk.key]
            if cached is not None:
                stats.cached += 1
                self.progress.advance(len(chunk.text))
                return cached
            task = asyncio.ensure_future(self._generate(chunk, history, stats))
            running[chunk.key] = task
            try:
                done = await task
            finally:
                running.pop(chunk.key, None)
            cache.put(done)
            self.progress.advance(len(chunk.text), done.completion_tokens)
            return done

        async def section(chunks: list[Chunk]) -> None:
            history: str | None = None
            for chunk in chunks:
                result = await one(chunk, history)
                results[chunk.number] = result
                history = result.translation or None

        tasks = [asyncio.ensure_future(section(chunks)) for chunks in self.sections(planned)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        translations: Translations = [[None] * len(group) for group in document.groups]
        mismatches = []
        for chunks in planned:
            for chunk in chunks:
                result = results[chunk.number]
                stats.chunks += 1
                stats.characters += len(chunk.text)
                lines = split_translation(result.translation)
                target = translations[chunk.group]
                if len(lines) == len(chunk.segments):
                    for index, line in zip(chunk.segments, lines, strict=True):
                        target[index] = line
                else:  # kept whole, where the chunk ends; its other segments give way to it
                    target[chunk.segments[-1]] = "\n".join(lines)
                    first = chunk.text.split("\n", 1)[0]
                    shown = first if len(first) <= _SHOWN_CHARS else first[:_SHOWN_CHARS] + "…"
                    mismatches.append(
                        Mismatch(
                            chunk=chunk.number,
                            source_lines=len(chunk.segments),
                            translated_lines=len(lines),
                            first_line=shown,
                        )
                    )
        return translations, stats, mismatches

    async def _generate(self, chunk: Chunk, history: str | None, stats: ChunkStats) -> CachedChunk:
        params = self.settings.params.model_copy(update={"max_tokens": self.settings.max_tokens_for(chunk.text)})
        attempts = [await self._translate(chunk, history, params)]
        expected = len(chunk.segments)
        best = split_translation(attempts[0].text)
        if len(best) != expected and self.settings.line_retry:
            # one more try, a little less prone to repeat itself, so that a greedy setting answers differently
            penalty = max(params.frequency_penalty, DEGENERATION_RETRY_PENALTIES[0])
            retry = params.model_copy(update={"frequency_penalty": penalty})
            attempts.append(await self._translate(chunk, history, retry))
            stats.line_retries += 1
            again = split_translation(attempts[-1].text)
            if abs(len(again) - expected) <= abs(len(best) - expected):
                best = again
        generations = [result for attempt in attempts for result in attempt.attempts]
        stats.generations += len(generations)
        stats.degeneration_retries += sum(len(attempt.attempts) - 1 for attempt in attempts)
        prompt_tokens = sum(result.prompt_tokens for result in generations)
        completion_tokens = sum(result.completion_tokens for result in generations)
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        return CachedChunk(
            key=chunk.key,
            translation="\n".join(best),
            lines_match=len(best) == expected,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            generations=len(generations),
        )

    async def _translate(self, chunk: Chunk, history: str | None, params: SamplingParams) -> Translation:
        async with self._semaphore:
            return await translate_with(
                self.backend.complete, self.backend.prompt_format, chunk.text, chunk.glossary, history, params
            )
