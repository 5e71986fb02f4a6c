"""One ``sakura translate`` run: read every input first, then translate file by file, write atomically, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakura_translate.atomic import write_atomic
from sakura_translate.backends import Backend
from sakura_translate.cache import ChunkCache, cache_path_for
from sakura_translate.errors import InputError, zh
from sakura_translate.formats import Document, LoadOptions, load_translatable
from sakura_translate.formats.galtransl import NotAScript
from sakura_translate.gamecopy import copy_files, game_copies
from sakura_translate.glossary import Glossary, load_glossaries
from sakura_translate.outputs import check_writable, is_finished_output
from sakura_translate.paths import FilePlan, plan_files
from sakura_translate.pipeline import Settings, Translator
from sakura_translate.progress import Progress
from sakura_translate.report import FileReport, RunReport

logger = logging.getLogger(__name__)

#: OpenCC conversions from Simplified Chinese offered by --opencc-config.
OPENCC_CONFIGS = ("s2t", "s2tw", "s2twp", "s2hk")


@dataclass
class Job:
    """Everything a run needs besides where it generates."""

    source: Path
    output: Path | None = None
    glossaries: tuple[Path, ...] = ()
    settings: Settings = field(default_factory=Settings)
    slots: int | None = None
    encoding: str | None = None
    titles: bool = False
    bilingual: bool = False
    traditional: str | None = None
    keep_cache: bool = False
    progress: bool | None = None
    #: ``-o`` ended with a path separator: a folder to write into, even for one file.
    output_is_folder: bool = False
    overwrite: bool = False
    #: Glob patterns of a folder's files to leave out (matched against the path inside the folder and the name).
    exclude: tuple[str, ...] = ()
    report: Path | None = None


@dataclass
class Prepared:
    """Inputs read and checked: nothing is written before every one of them reads."""

    plans: list[FilePlan]
    glossary: Glossary
    documents: list[Document]
    #: Files of a folder left out because their translation exists (kept unless --overwrite).
    kept: list[FilePlan] = field(default_factory=list)
    #: Files of a folder left out, and why (one line each).
    notes: list[str] = field(default_factory=list)
    #: A game folder's files that are copied, not translated: (source, copy).
    copies: list[tuple[Path, Path]] = field(default_factory=list)


def prepare(job: Job) -> Prepared:
    """Read the glossaries and every input file; InputError for the first that does not read."""
    plans = plan_files(
        job.source, job.output, job.glossaries, output_is_folder=job.output_is_folder, exclude=job.exclude
    )
    kept = [] if job.overwrite else [plan for plan in plans if is_finished_output(plan.output)]
    if kept and len(kept) == len(plans):
        raise InputError(
            zh(
                f"{kept[0].output}: exists (perhaps proofread by hand) and is kept; pass --overwrite to translate "
                "again, or -o to write elsewhere",
                "输出文件已存在，不会覆盖；重新翻译请加 --overwrite，或用 -o 换个位置",
            )
        )
    plans = [plan for plan in plans if plan not in kept]
    outputs = [plan.output for plan in plans]
    if job.traditional is not None:
        outputs += [plan.traditional for plan in plans]
    check_writable(outputs + ([job.report] if job.report is not None else []))
    for path in job.glossaries:
        if not path.is_file():
            raise InputError(zh(f"{path}: no such glossary file", "找不到术语表文件"))
    glossary = load_glossaries(job.glossaries)
    options = LoadOptions(encoding=job.encoding, titles=job.titles, glossary=glossary)
    documents = []
    notes = []
    for plan in list(plans):
        try:
            documents.append(load_translatable(plan.source, options))
        except NotAScript as exc:
            if not job.source.is_dir():
                raise
            plans.remove(plan)  # a glossary or another tool's JSON beside the scripts: not ours to translate
            notes.append(f"{exc}; left out")
    if not plans:
        raise InputError(zh(f"{job.source}: no files to translate", "没有可翻译的文件"))
    if job.traditional is not None and job.traditional not in OPENCC_CONFIGS:
        raise InputError(
            zh(
                f"unknown OpenCC conversion {job.traditional!r} (have: {', '.join(OPENCC_CONFIGS)})",
                "未知的 OpenCC 转换",
            )
        )
    copies = game_copies(job.source, plans + kept)
    if copies:
        notes = [f"{len(copies)} files of the game copied as they are"]  # not each data file without text
    return Prepared(plans, glossary, documents, kept, notes, copies)


async def translate_files(
    job: Job,
    prepared: Prepared,
    connect: Callable[[], Awaitable[Backend]],
) -> RunReport:
    """Translate every prepared document through the backend ``connect`` gives, and write the outputs."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    backend = await connect()
    try:
        _warn_if_glossary_unused(backend, prepared.glossary)
        slots = job.slots or backend.parallelism
        report = RunReport(
            model=backend.model_id,
            prompt_format=backend.prompt_format.name,
            where=backend.where,
            slots=slots,
            kept=[str(plan.output) for plan in prepared.kept],
            notes=prepared.notes,
        )
        converter = _opencc(job.traditional) if job.traditional else None
        total_chars = sum(len(text) for doc in prepared.documents for group in doc.groups for text in group)
        progress = Progress(total_chars, _count_chunks(job, prepared), enabled=job.progress)
        translator = Translator(backend, prepared.glossary, job.settings, slots, progress)
        caches: list[ChunkCache] = []
        started = time.perf_counter()
        try:
            with logging_redirect_tqdm():  # log lines above the progress bar, not through it
                for plan, document in zip(prepared.plans, prepared.documents, strict=True):
                    progress.describe(plan.source.name)
                    cache = ChunkCache(cache_path_for(plan.output))
                    caches.append(cache)
                    translations, stats, flagged = await translator.translate(document, cache)
                    write_atomic(plan.output, document.render(translations, bilingual=job.bilingual))
                    traditional = None
                    if converter is not None:
                        write_atomic(
                            plan.traditional,
                            document.render(translations, bilingual=job.bilingual, convert=converter.convert),
                        )
                        traditional = str(plan.traditional)
                    report.files.append(
                        FileReport(
                            source=str(plan.source),
                            output=str(plan.output),
                            traditional=traditional,
                            kind=document.kind,
                            encoding=document.encoding,
                            stats=stats,
                            flagged=flagged,
                            notes=document.notes(),
                        )
                    )
                    report.stats.add(stats)
        finally:
            report.seconds = time.perf_counter() - started
            progress.close()
            for cache in caches:
                cache.close()
        copy_files(prepared.copies)
        if not job.keep_cache:
            for cache in caches:
                cache.remove()
        return report
    finally:
        await backend.close()


def _count_chunks(job: Job, prepared: Prepared) -> int:
    from sakura_translate.chunking import chunk_lines

    return sum(len(chunk_lines(group, job.settings.chunk_chars)) for doc in prepared.documents for group in doc.groups)


def _warn_if_glossary_unused(backend: Backend, glossary: Glossary) -> None:
    if not len(glossary):
        return
    fmt = backend.prompt_format
    if fmt.translation_messages("x", "a->b", None) == fmt.translation_messages("x", "", None):
        logger.warning("the %s prompt has no place for a glossary: --glossary is not sent to this model", fmt.name)


def _opencc(config: str) -> Any:
    import opencc

    return opencc.OpenCC(config)
