"""One job's document through ``sakura translate``'s pipeline: read, translate with the resume cache, render the
result with the chunks edited by hand, and the chunks as the proofreading view shows them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sakura_translate.backends import Backend
from sakura_translate.cache import CachedChunk, ChunkCache
from sakura_translate.checks import Reason, check_chunk
from sakura_translate.chunking import DEFAULT_CHUNK_CHARS, chunk_lines
from sakura_translate.formats import Document, LoadOptions, Translations, load_translatable
from sakura_translate.glossary import Glossary
from sakura_translate.paths import plan_files
from sakura_translate.pipeline import Chunk as PlannedChunk
from sakura_translate.pipeline import Settings, Translator, split_translation
from sakura_translate.progress import Progress

from sakura_web.jobs.models import Chunk, Flag, JobOptions
from sakura_web.sampling import sampling_for

#: What each check's flag says on the proofreading view.
REASON_MESSAGES: dict[str, str] = {
    Reason.LINE_COUNT: "the answer had another number of lines than the source",
    Reason.KANA: "kana left in the translation",
    Reason.HANGUL: "hangul in the translation",
    Reason.DEGENERATION: "the answer repeats itself (degeneration)",
    Reason.UNTRANSLATED: "the source line came back untranslated",
    Reason.GLOSSARY: "a glossary term's translation is missing",
    Reason.MARKUP: "control codes or markup lost or altered",
    Reason.CONTEXT_OVERFLOW: "too long for the model's context",
}
KEPT_PREFIX = "kept in the source: "


def settings_for(options: JobOptions) -> Settings:
    """The pipeline's settings for a job's options (the CLI's defaults for what they leave out)."""
    max_tokens = options.sampling.max_tokens if options.sampling is not None else None
    return Settings(
        chunk_chars=options.chunk_chars or DEFAULT_CHUNK_CHARS,
        params=sampling_for(options.preset, options.sampling, param="options.preset"),
        max_tokens=max_tokens,
        context=options.context,
    )


def glossary_for(options: JobOptions) -> Glossary:
    return Glossary.of(options.glossary)


@dataclass(frozen=True)
class ReadFile:
    """An upload that reads: what the job shows before it starts."""

    result_name: str
    chunks: int
    characters: int


def read_upload(source: Path, options: JobOptions) -> ReadFile:
    """Check that the pipeline reads ``source`` as ``sakura translate`` would (blocking; InputError with the
    CLI's one line otherwise) and count its chunks and characters."""
    (plan,) = plan_files(source, None)
    document = read_document(source, options)
    chunk_chars = settings_for(options).chunk_chars
    return ReadFile(
        result_name=plan.output.name,
        chunks=sum(len(chunk_lines(group, chunk_chars)) for group in document.groups),
        characters=sum(len(text) for group in document.groups for text in group),
    )


def read_document(source: Path, options: JobOptions) -> Document:
    """The parsed upload (blocking); InputError when it does not read or has nothing to translate."""
    return load_translatable(source, LoadOptions(glossary=glossary_for(options)))


class JobProgress(Progress):
    """The pipeline's progress, reported to ``on_advance`` after each chunk instead of a terminal bar."""

    def __init__(self, total_chars: int, total_chunks: int, on_advance: Callable[[JobProgress], None]) -> None:
        super().__init__(total_chars, total_chunks, enabled=False)
        self.total_chars = total_chars
        self.chars = 0
        #: Characters of chunks generated in this run (not read from the resume cache), for the speed.
        self.generated_chars = 0
        self.on_advance = on_advance

    def advance(self, chars: int, completion_tokens: int = 0) -> None:
        super().advance(chars, completion_tokens)
        self.chars += chars
        if completion_tokens:
            self.generated_chars += chars
        self.on_advance(self)

    @property
    def characters_per_second(self) -> float | None:
        seconds = time.perf_counter() - self.started
        return self.generated_chars / seconds if self.generated_chars and seconds > 0 else None

    @property
    def seconds_left(self) -> float | None:
        speed = self.characters_per_second
        return max(self.total_chars - self.chars, 0) / speed if speed else None


class JobTranslation:
    """A job's document and translator, for a run or for proofreading."""

    def __init__(
        self, document: Document, backend: Backend, options: JobOptions, cache_path: Path, progress: Progress
    ) -> None:
        self.document = document
        self.settings = settings_for(options)
        self.translator = Translator(backend, glossary_for(options), self.settings, backend.parallelism, progress)
        self.planned = self.translator.plan(document)
        self.chunks = [chunk for group in self.planned for chunk in group]
        self.cache_path = cache_path
        self.names = tuple(document.kept_names())

    async def translate(self) -> Translations:
        """Translate the document; chunks in the resume cache are not generated again, each new one is saved
        there as it finishes."""
        cache = await asyncio.to_thread(ChunkCache, self.cache_path)
        try:
            translations, _, _ = await self.translator.translate(self.document, cache)
        finally:
            cache.close()
        return translations

    def render(self, translations: Translations, edits: dict[int, list[str]]) -> bytes:
        """The translated file, with the chunks edited by hand (blocking: run it off the loop)."""
        translations = [list(group) for group in translations]
        for index, lines in edits.items():
            chunk = self.chunk(index)
            for segment, line in zip(chunk.segments, lines, strict=True):
                translations[chunk.group][segment] = line
        return self.document.render(translations)

    def chunk(self, index: int) -> PlannedChunk:
        """The chunk at ``index`` (from 0, in file order); IndexError when there is none."""
        if not 0 <= index < len(self.chunks):
            raise IndexError(index)
        return self.chunks[index]

    async def retranslate(self, index: int) -> CachedChunk:
        """Translate one chunk again (not from the cache), with the context the run gave it; the cache keeps the
        new translation."""
        chunk = self.chunk(index)
        cache = await asyncio.to_thread(ChunkCache, self.cache_path)
        try:
            before = self.translator.predecessor(self.planned, chunk)
            history = None
            if before is not None and (earlier := cache.get(before.key)) is not None:
                history = self.settings.context_after(before.text.split("\n"), [earlier.translation])
            done = await self.translator.translate_chunk(chunk, history, self.names)
            cache.put(done)
        finally:
            cache.close()
        return done

    def views(self, cache: dict[str, CachedChunk], edits: dict[int, list[str]]) -> list[Chunk]:
        """Every chunk as proofreading shows it: source lines, translated (or edited) lines, the checks' flags."""
        return [self.view(index, cache.get(chunk.key), edits.get(index)) for index, chunk in enumerate(self.chunks)]

    def view(self, index: int, cached: CachedChunk | None, edit: list[str] | None) -> Chunk:
        """One chunk for proofreading. A line the pipeline kept in its source shows why; every translated line
        shows the checks it fails."""
        chunk = self.chunk(index)
        source = [self.document.groups[chunk.group][segment] for segment in chunk.segments]
        if edit is not None:
            translation = list(edit)
        elif cached is not None:
            translation = split_translation(cached.translation)
        else:
            translation = []
        flags: list[Flag] = []
        kept: set[int] = set()
        if cached is not None and edit is None:
            for flag in cached.flags:
                kept.add(flag.line)
                flags += [
                    Flag(line=flag.line, reason=reason, message=KEPT_PREFIX + REASON_MESSAGES.get(reason, reason))
                    for reason in flag.reasons
                ]
        if translation and len(translation) == len(source):
            failed = check_chunk(
                [self.settings.sent_text(line) for line in source],
                translation,
                reached_max_tokens=False,
                glossary=chunk.glossary,
                settings=self.settings.checks,
                names=self.names,
            )
            for line, reasons in sorted(failed.items()):
                if line not in kept:
                    flags += [Flag(line=line, reason=r, message=REASON_MESSAGES.get(r, str(r))) for r in reasons]
        flags.sort(key=lambda flag: flag.line)
        return Chunk(index=index, source=source, translation=translation, flags=flags, edited=edit is not None)


def flagged_lines(views: list[Chunk]) -> int:
    """Lines with at least one flag."""
    return sum(len({flag.line for flag in view.flags}) for view in views)
