"""Translating one document: chunks, context, glossary, retries, parallel sections, the resume cache.

A document's segments (one line each) are cut into chunks of at most ``chunk_chars`` characters at line ends.
Each chunk is sent with the glossary entries that occur in it and, as context, the previous chunk's translation,
so chunks depend on the one before. To keep every slot of the server busy anyway, each group of chunks is cut
into as many consecutive sections as there are slots; sections run side by side, and inside a section chunks run
in order, each with its predecessor as context. The result does not depend on timing: a run interrupted and
resumed from the cache produces what an uninterrupted run produces.

Every reply goes through sakura_translate.checks. A chunk that fails them is tried once more with a higher
frequency penalty, then split in halves, each translated the same way, down to single lines; a line that still
fails keeps its source text and is flagged in the report. So a reply with another line count, or a chunk too long
for the model's context, never moves a translation out of its line.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Literal

from sakura_core.degeneration import DEGENERATION_RETRY_PENALTIES, Translation, translate_with
from sakura_core.prompts import GlossaryEntry, format_glossary
from sakura_core.types import SamplingParams
from sakura_translate.backends import Backend
from sakura_translate.cache import CachedChunk, CachedFlag, ChunkCache, chunk_key
from sakura_translate.checks import CheckSettings, Reason, check_chunk
from sakura_translate.chunking import chunk_lines
from sakura_translate.errors import ContextOverflow
from sakura_translate.formats import Document, Translations
from sakura_translate.glossary import Glossary
from sakura_translate.progress import Progress
from sakura_translate.report import ChunkStats, FlaggedLine

logger = logging.getLogger(__name__)

_MAX_TOKENS_SLACK = 32
_HALFWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
ContextMode = Literal["translation", "source", "none"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("translation", "source", "none")


@dataclass(frozen=True)
class Settings:
    """How chunks are made and sampled; everything here but ``slots`` is part of each chunk's cache key."""

    chunk_chars: int = 512
    params: SamplingParams = field(default_factory=SamplingParams)
    #: Tokens a chunk may generate; None: the chunk's characters and a little more, at least ``chunk_chars``
    #: (SakuraLLM's scripts allow 512 tokens for 512 characters; Chinese takes fewer tokens than characters).
    max_tokens: int | None = None
    line_retry: bool = True
    checks: CheckSettings = field(default_factory=CheckSettings)
    #: What precedes each chunk in its prompt: the previous chunk's translation, its source text, or nothing.
    context: ContextMode = "translation"
    #: Full-width digits (０-９) sent as ASCII digits, as books.fishhawk.top's Sakura worker sends them.
    halfwidth_digits: bool = True

    def sent_text(self, line: str) -> str:
        """``line`` as the model gets it."""
        return line.translate(_HALFWIDTH_DIGITS) if self.halfwidth_digits else line

    def context_after(self, sources: list[str], translations: list[str]) -> str | None:
        """The context for what follows these source lines, translated as ``translations``."""
        if self.context == "none":
            return None
        text = (
            "\n".join(self.sent_text(line) for line in sources) if self.context == "source" else "\n".join(translations)
        )
        return text or None

    def max_tokens_for(self, text: str) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return max(self.chunk_chars, len(text) + _MAX_TOKENS_SLACK)

    def key_settings(self) -> dict[str, object]:
        params = self.params.model_dump(exclude={"max_tokens", "stop"})
        key: dict[str, object] = {"chunk_chars": self.chunk_chars, "max_tokens": self.max_tokens, "params": params}
        # settings added later enter the key only when they differ from their defaults: keys of chunks finished
        # before they existed stay valid
        checks = self.checks.key()
        if checks is not None:
            key["checks"] = checks
        if self.context != "translation":
            key["context"] = self.context
        if not self.halfwidth_digits:
            key["halfwidth_digits"] = False
        return key


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


def _complete(cached: CachedChunk, chunk: Chunk) -> bool:
    """Whether a cached chunk has one translated line per segment."""
    return cached.lines_match and len(split_translation(cached.translation)) == len(chunk.segments)


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

    async def translate(
        self, document: Document, cache: ChunkCache
    ) -> tuple[Translations, ChunkStats, list[FlaggedLine]]:
        """Translate ``document``; every finished chunk is saved in ``cache`` as it finishes."""
        planned = self.plan(document)
        results: dict[int, CachedChunk] = {}
        stats = ChunkStats()
        running: dict[str, asyncio.Task[CachedChunk]] = {}
        names = tuple(document.kept_names())
        earlier = set(cache.chunks)  # finished by an earlier run; the rest of the cache is this run's

        async def one(chunk: Chunk, history: str | None) -> CachedChunk:
            # the progress bar counts the segments' characters, as its total does (not the newlines joining them)
            chars = len(chunk.text) - (len(chunk.segments) - 1)
            cached = cache.get(chunk.key)
            if cached is not None and not _complete(cached, chunk):
                cached = None  # from a version that kept mismatched chunks whole: translate it again
            if cached is None and chunk.key in running:  # the same text earlier in the file, being translated
                cached = await running[chunk.key]
            if cached is not None:
                if chunk.key in earlier:
                    stats.cached += 1
                else:
                    stats.repeated += 1
                self.progress.advance(chars)
                return cached
            task = asyncio.ensure_future(self._generate(chunk, history, stats, names))
            running[chunk.key] = task
            try:
                done = await task
            finally:
                running.pop(chunk.key, None)
            cache.put(done)
            self.progress.advance(chars, done.completion_tokens)
            return done

        async def section(chunks: list[Chunk]) -> None:
            history: str | None = None
            for chunk in chunks:
                result = await one(chunk, history)
                results[chunk.number] = result
                history = self.settings.context_after(chunk.text.split("\n"), [result.translation])

        tasks = [asyncio.ensure_future(section(chunks)) for chunks in self.sections(planned)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        translations: Translations = [[None] * len(group) for group in document.groups]
        flagged: list[FlaggedLine] = []
        offsets = [sum(len(group) for group in document.groups[:index]) for index in range(len(document.groups))]
        for chunks in planned:
            for chunk in chunks:
                result = results[chunk.number]
                stats.chunks += 1
                stats.characters += len(chunk.text)
                lines = split_translation(result.translation)
                target = translations[chunk.group]
                for index, line in zip(chunk.segments, lines, strict=True):
                    target[index] = line
                for flag in result.flags:
                    segment = chunk.segments[flag.line]
                    flagged.append(
                        FlaggedLine(
                            file=str(document.path),
                            position=offsets[chunk.group] + segment + 1,
                            source=document.groups[chunk.group][segment],
                            output=flag.output,
                            reasons=flag.reasons,
                        )
                    )
        return translations, stats, flagged

    async def translate_chunk(self, chunk: Chunk, history: str | None, names: tuple[str, ...] = ()) -> CachedChunk:
        """Translate one planned chunk afresh (never from a cache), through the same checks and cascade as
        ``translate`` gives each chunk; ``history`` is the context sent with it (``predecessor`` finds whose)."""
        return await self._generate(chunk, history, ChunkStats(), names)

    def predecessor(self, planned: list[list[Chunk]], chunk: Chunk) -> Chunk | None:
        """The chunk whose translation ``translate`` sends as ``chunk``'s context: the one before it in its
        section (None for a section's first chunk)."""
        for section in self.sections(planned):
            for before, current in zip([None, *section], section, strict=False):
                if current.number == chunk.number:
                    return before
        return None

    async def _generate(
        self, chunk: Chunk, history: str | None, stats: ChunkStats, names: tuple[str, ...]
    ) -> CachedChunk:
        spent = _Spent(names)
        piece = await self._solve(chunk.text.split("\n"), chunk.glossary, history, stats, spent)
        stats.generations += spent.generations
        stats.prompt_tokens += spent.prompt_tokens
        stats.completion_tokens += spent.completion_tokens
        return CachedChunk(
            key=chunk.key,
            translation="\n".join(piece.lines),
            flags=piece.flags,
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            generations=spent.generations,
        )

    async def _solve(
        self,
        sources: list[str],
        glossary: list[GlossaryEntry],
        history: str | None,
        stats: ChunkStats,
        spent: _Spent,
    ) -> _Piece:
        """Translate ``sources`` (consecutive lines) through the cascade: a try; after a failed check one more with
        a higher frequency penalty; then each half on its own, down to single lines; a single line that still
        fails keeps its source text and is flagged."""
        sent = [self.settings.sent_text(line) for line in sources]  # what the model sees, and is checked against
        text = "\n".join(sent)
        params = self.settings.params.model_copy(update={"max_tokens": self.settings.max_tokens_for(text)})
        # a retry with a frequency penalty, so that a greedy setting answers differently (as Sakura's tools do)
        penalty = max(params.frequency_penalty, DEGENERATION_RETRY_PENALTIES[0])
        tries = (
            [params, params.model_copy(update={"frequency_penalty": penalty})] if self.settings.line_retry else [params]
        )
        failed: dict[int, list[Reason]] = {}
        outputs: list[str] = []
        for number, attempt_params in enumerate(tries):
            if number:
                stats.line_retries += 1
            try:
                try:
                    translation = await self._translate(text, glossary, history, attempt_params)
                except ContextOverflow:
                    if history is None:
                        raise
                    history = None  # the context helps but is not needed: drop it before splitting the text
                    translation = await self._translate(text, glossary, history, attempt_params)
            except ContextOverflow as exc:
                # a smaller piece may fit; retrying the same prompt cannot
                logger.info("a chunk of %d lines does not fit the context (%s); splitting it", len(sources), exc)
                failed = {index: [Reason.CONTEXT_OVERFLOW] for index in range(len(sources))}
                outputs = []
                break
            spent.add(translation, stats)
            outputs = split_translation(translation.text)
            failed = check_chunk(
                sent,
                outputs,
                reached_max_tokens=translation.degenerated,
                glossary=glossary,
                settings=self.settings.checks,
                names=spent.names,
            )
            if not failed:
                return _Piece(outputs, [])
            if translation.degenerated:
                break  # translate_with already raised the penalty twice: smaller pieces are the next step
        if len(sources) > 1:
            stats.splits += 1
            middle = len(sources) // 2
            first = await self._solve(sources[:middle], self._entries(sources[:middle]), history, stats, spent)
            # the second half follows the first, as a chunk follows its predecessor
            context = self.settings.context_after(sources[:middle], first.lines)
            second = await self._solve(sources[middle:], self._entries(sources[middle:]), context, stats, spent)
            moved = [flag.model_copy(update={"line": flag.line + middle}) for flag in second.flags]
            return _Piece(first.lines + second.lines, first.flags + moved)
        reasons = failed.get(0, [Reason.LINE_COUNT])
        output = "\n".join(outputs)
        return _Piece(list(sources), [CachedFlag(line=0, reasons=[str(r) for r in reasons], output=output)])

    def _entries(self, sources: list[str]) -> list[GlossaryEntry]:
        return self.glossary.for_text("\n".join(sources))

    async def _translate(
        self, text: str, glossary: list[GlossaryEntry], history: str | None, params: SamplingParams
    ) -> Translation:
        async with self._semaphore:
            return await translate_with(
                self.backend.complete, self.backend.prompt_format, text, glossary, history, params
            )


@dataclass
class _Piece:
    """Consecutive lines solved by the cascade: one translation per source line, and the lines flagged."""

    lines: list[str]
    flags: list[CachedFlag]


@dataclass
class _Spent:
    """What one chunk's generations cost, all tries and pieces together (and the document's kept names, which
    every piece is checked with)."""

    names: tuple[str, ...] = ()
    generations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, translation: Translation, stats: ChunkStats) -> None:
        self.generations += len(translation.attempts)
        stats.degeneration_retries += len(translation.attempts) - 1
        self.prompt_tokens += sum(result.prompt_tokens for result in translation.attempts)
        self.completion_tokens += sum(result.completion_tokens for result in translation.attempts)
