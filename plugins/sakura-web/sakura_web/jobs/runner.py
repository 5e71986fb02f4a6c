"""The job manager: jobs queued and run one at a time (``--jobs-at-once``), their progress for the routes and the
event streams, cancelling, proofreading edits, and the jobs folder reloaded at start-up (unfinished jobs continue
from the pipeline's resume cache)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sakura_translate.atomic import write_atomic
from sakura_translate.cache import ChunkCache
from sakura_translate.errors import InputError

from sakura_core.server.generation.service import GenerationService
from sakura_core.server.generation.state import Phase, ServerState
from sakura_core.server.http.errors import APIError, invalid_request, unavailable
from sakura_core.server.keys import STATE
from sakura_web.file_formats import suffix_for
from sakura_web.jobs.backend import ServerStopping, ServiceBackend
from sakura_web.jobs.models import Chunk, Job, JobOptions, JobRecord, JobState
from sakura_web.jobs.store import JobStore, default_jobs_dir, new_job_id
from sakura_web.jobs.translation import (
    JobProgress,
    JobTranslation,
    flagged_lines,
    read_document,
    read_upload,
    settings_for,
)
from sakura_web.options import WebOptions

logger = logging.getLogger(__name__)

#: How often a worker looks whether the model finished loading.
READY_POLL_SECONDS = 0.25
#: Jobs whose parsed document and plan stay in memory for proofreading.
KEPT_TRANSLATIONS = 4


def not_found(job_id: str) -> APIError:
    return APIError(404, f"no job {job_id!r}", code="job_not_found", param="id")


def conflict(message: str) -> APIError:
    return APIError(409, message, code="job_state")


@dataclass
class JobEntry:
    """A job in memory: its record, the task running it, and an event set on every change."""

    record: JobRecord
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cancelling: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def job(self) -> Job:
        return self.record.job

    def notify(self) -> None:
        """Wake every event stream following the job."""
        self.changed.set()
        self.changed = asyncio.Event()


class JobManager:
    """Every job of the jobs folder, and the workers that translate them."""

    def __init__(self, state: ServerState, options: WebOptions) -> None:
        self.state = state
        self.options = options
        self.store = JobStore(options.jobs_dir or default_jobs_dir())
        self.entries: dict[str, JobEntry] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self._translations: OrderedDict[str, JobTranslation] = OrderedDict()

    # life

    async def start(self) -> None:
        """Reload the jobs folder: finished jobs are listed again; queued and running ones queue again, in the
        order they were created, and continue from their resume cache."""
        for record in sorted(await asyncio.to_thread(self.store.load_all), key=lambda r: r.job.created_at):
            entry = JobEntry(record)
            self.entries[record.job.id] = entry
            if not record.job.finished:
                record.job.state = "queued"
                self.queue.put_nowait(record.job.id)
        if self.entries:
            logger.info("jobs: %d in %s, %d to continue", len(self.entries), self.store.root, self.queue.qsize())
        self.workers = [asyncio.create_task(self._work()) for _ in range(self.options.jobs_at_once)]

    async def stop(self) -> None:
        """Stop the workers and the jobs they run; unfinished jobs stay as they are on disk and continue at the
        next start."""
        tasks = [*self.workers, *(entry.task for entry in self.entries.values() if entry.task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # reading

    def entry(self, job_id: str) -> JobEntry:
        """The job ``job_id``; 404 when there is none."""
        entry = self.entries.get(job_id)
        if entry is None:
            raise not_found(job_id)
        return entry

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        return sorted((entry.job for entry in self.entries.values()), key=lambda job: job.created_at, reverse=True)

    def unfinished_of(self, client: str | None) -> int:
        """Queued or running jobs created by ``client``."""
        return sum(1 for e in self.entries.values() if e.record.client == client and not e.job.finished)

    def result_path(self, job_id: str) -> Path:
        """The translated file of a finished job; 409 while it is not done."""
        job = self.entry(job_id).job
        if job.state != "done" or job.result_name is None:
            raise conflict(f"job {job_id} is {job.state}: its result is not ready")
        return self.store.folder(job_id).output(job.result_name)

    # changes

    async def create(self, name: str, data: bytes, options: JobOptions, client: str | None) -> Job:
        """A new job for the uploaded ``data`` called ``name``, queued; 400 (code ``invalid_file``, the CLI's
        one line) for a file the pipeline cannot read."""
        stored = name
        if options.format is not None:
            suffix = suffix_for(options.format)
            if suffix is None:
                raise invalid_request(
                    f"unknown format {options.format!r} (see /translate/info's file_formats)", param="options.format"
                )
            if Path(name).suffix.lower() != suffix:
                stored = Path(name).stem + suffix
        settings_check(options)
        job_id = new_job_id()
        folder = self.store.folder(job_id)
        try:
            source = await asyncio.to_thread(self.store.write_source, job_id, stored, data)
            read = await asyncio.to_thread(read_upload, source, options)
        except InputError as exc:
            await asyncio.to_thread(self.store.remove, job_id)
            message = str(exc).replace(str(folder.source(stored)), stored)
            raise invalid_request(message, param="file", code="invalid_file") from None
        except Exception as exc:  # a parser's own failure on a malformed file is still the file's fault
            await asyncio.to_thread(self.store.remove, job_id)
            logger.debug("cannot read an upload", exc_info=exc)
            raise invalid_request(
                f"{stored}: cannot be read ({type(exc).__name__}: {exc})", param="file", code="invalid_file"
            ) from None
        job = Job(
            id=job_id,
            name=name,
            format=Path(stored).suffix.lower().lstrip("."),
            state="queued",
            created_at=time.time(),
            chunks_total=read.chunks,
            characters_total=read.characters,
            result_name=read.result_name,
        )
        record = JobRecord(job=job, options=options, client=client, source_name=stored)
        await asyncio.to_thread(self.store.save, record)
        self.entries[job_id] = JobEntry(record)
        self.queue.put_nowait(job_id)
        await self._prune()
        return job

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (its generations end at once, freeing their slots); 409 for a job that
        finished otherwise."""
        entry = self.entry(job_id)
        job = entry.job
        if job.state in ("done", "failed"):
            raise conflict(f"job {job_id} is {job.state}: there is nothing to cancel")
        if job.state == "queued":
            await self._finish(entry, "cancelled")
        elif job.state == "running" and entry.task is not None:
            entry.cancelling = True
            entry.task.cancel()
            await asyncio.wait({entry.task})
        return entry.job

    async def delete(self, job_id: str) -> None:
        """Cancel the job if it runs and remove its files."""
        entry = self.entry(job_id)
        if not entry.job.finished:
            await self.cancel(job_id)
        await self._remove(entry)

    async def chunks(self, job_id: str) -> list[Chunk]:
        """Every chunk of the job for proofreading."""
        entry = self.entry(job_id)
        translation = await self._translation(entry)
        cache = await asyncio.to_thread(ChunkCache, translation.cache_path)
        edits = await asyncio.to_thread(self.store.load_edits, job_id)
        return translation.views(cache.chunks, edits)

    async def edit(self, job_id: str, index: int, lines: list[str]) -> Chunk:
        """Replace a chunk's translated lines by hand and rebuild the result; 400 when the line count differs."""
        entry = self.entry(job_id)
        async with entry.lock:
            translation = await self._proofreadable(entry, index)
            source = translation.chunk(index).segments
            if len(lines) != len(source):
                raise invalid_request(
                    f"chunk {index} has {len(source)} source lines; send as many translated lines, not {len(lines)}",
                    param="translation",
                    code="line_count",
                )
            if any("\n" in line or "\r" in line for line in lines):
                raise invalid_request("a translated line holds no line break", param="translation")
            edits = await asyncio.to_thread(self.store.load_edits, job_id)
            edits[index] = lines
            await asyncio.to_thread(self.store.save_edits, job_id, edits)
            return await self._rebuild(entry, translation, index)

    async def retranslate(self, job_id: str, index: int) -> Chunk:
        """Translate a chunk again (not from the cache; a hand edit of it is dropped) and rebuild the result."""
        entry = self.entry(job_id)
        async with entry.lock:
            translation = await self._proofreadable(entry, index)
            await translation.retranslate(index)
            edits = await asyncio.to_thread(self.store.load_edits, job_id)
            if edits.pop(index, None) is not None:
                await asyncio.to_thread(self.store.save_edits, job_id, edits)
            return await self._rebuild(entry, translation, index)

    # running

    async def _work(self) -> None:
        while True:
            job_id = await self.queue.get()
            entry = self.entries.get(job_id)
            if entry is None or entry.job.state != "queued":
                continue
            entry.task = asyncio.create_task(self._run(entry))
            await asyncio.wait({entry.task})
            entry.task = None

    async def _service(self) -> GenerationService:
        while self.state.service is None:  # noqa: ASYNC110 - the server state has no event for "loaded"
            await asyncio.sleep(READY_POLL_SECONDS)
        return self.state.service

    async def _run(self, entry: JobEntry) -> None:
        job = entry.job
        service = await self._service()
        job.state, job.started_at, job.error = "running", time.time(), None
        job.chunks_done = job.characters_done = 0
        job.characters_per_second = job.seconds_left = None
        await self._save(entry)
        try:
            translation = await self._open(entry, service, self._progress_of(entry))
            await self._write_result(entry, translation)
        except asyncio.CancelledError:
            if not entry.cancelling:
                raise  # the server stops: the job continues at the next start
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            entry.cancelling = False
            await self._finish(entry, "cancelled")
            return
        except ServerStopping:
            logger.info("job %s stops with the server; it continues at the next start", job.id)
            return
        except Exception as exc:
            if self.state.phase is Phase.STOPPING:
                return
            logger.warning("job %s failed: %s", job.id, exc, exc_info=not isinstance(exc, InputError))
            job.error = str(exc)
            await self._finish(entry, "failed")
            return
        job.seconds_left = 0.0
        await self._finish(entry, "done")

    def _progress_of(self, entry: JobEntry) -> JobProgress:
        job = entry.job

        def advanced(progress: JobProgress) -> None:
            job.chunks_done = progress.chunks
            job.characters_done = progress.chars
            job.characters_per_second = progress.characters_per_second
            job.seconds_left = progress.seconds_left
            entry.notify()

        return JobProgress(job.characters_total, job.chunks_total, advanced)

    async def _open(self, entry: JobEntry, service: GenerationService, progress: JobProgress) -> JobTranslation:
        record = entry.record
        folder = self.store.folder(record.job.id)
        document = await asyncio.to_thread(read_document, folder.source(record.source_name), record.options)
        assert record.job.result_name is not None
        return JobTranslation(
            document, ServiceBackend(service), record.options, folder.cache(record.job.result_name), progress
        )

    async def _translation(self, entry: JobEntry) -> JobTranslation:
        """The job's document and plan for proofreading (kept for the last few jobs asked)."""
        job_id = entry.job.id
        if job_id in self._translations:
            self._translations.move_to_end(job_id)
            return self._translations[job_id]
        service = self.state.require_service()
        progress = JobProgress(entry.job.characters_total, entry.job.chunks_total, lambda _: None)
        translation = await self._open(entry, service, progress)
        self._translations[job_id] = translation
        while len(self._translations) > KEPT_TRANSLATIONS:
            self._translations.popitem(last=False)
        return translation

    async def _proofreadable(self, entry: JobEntry, index: int) -> JobTranslation:
        if entry.job.state != "done":
            raise conflict(f"job {entry.job.id} is {entry.job.state}: chunks can be changed once it is done")
        translation = await self._translation(entry)
        if not 0 <= index < len(translation.chunks):
            raise APIError(404, f"job {entry.job.id} has no chunk {index}", code="chunk_not_found", param="index")
        return translation

    async def _rebuild(self, entry: JobEntry, translation: JobTranslation, index: int) -> Chunk:
        """Write the result again from the cache and the edits; the chunk as it is now."""
        views = await self._write_result(entry, translation)  # every chunk is in the cache: nothing is generated
        await self._save(entry)
        return views[index]

    async def _write_result(self, entry: JobEntry, translation: JobTranslation) -> list[Chunk]:
        """Translate the document (from the resume cache where it can), write the result with the hand edits, and
        count the flagged lines; every chunk as proofreading shows it."""
        job = entry.job
        translations = await translation.translate()
        edits = await asyncio.to_thread(self.store.load_edits, job.id)
        data = await asyncio.to_thread(translation.render, translations, edits)
        assert job.result_name is not None
        await asyncio.to_thread(write_atomic, self.store.folder(job.id).output(job.result_name), data)
        cache = await asyncio.to_thread(ChunkCache, translation.cache_path)
        views = translation.views(cache.chunks, edits)
        job.flagged_lines = flagged_lines(views)
        return views

    async def _finish(self, entry: JobEntry, state: JobState) -> None:
        job = entry.job
        job.state = state
        job.finished_at = time.time()
        if state != "done":
            job.seconds_left = None
        await self._save(entry)
        await self._prune()

    async def _save(self, entry: JobEntry) -> None:
        await asyncio.to_thread(self.store.save, entry.record)
        entry.notify()

    async def _remove(self, entry: JobEntry) -> None:
        job_id = entry.job.id
        self.entries.pop(job_id, None)
        self._translations.pop(job_id, None)
        await asyncio.to_thread(self.store.remove, job_id)
        entry.notify()

    async def _prune(self) -> None:
        """Remove the oldest finished jobs while more than ``--jobs-kept`` are kept."""
        finished = sorted(
            (entry for entry in self.entries.values() if entry.job.finished),
            key=lambda entry: entry.job.finished_at or entry.job.created_at,
        )
        while len(self.entries) > self.options.jobs_kept and finished:
            await self._remove(finished.pop(0))


def settings_check(options: JobOptions) -> None:
    """400 for options the pipeline cannot use (an unknown preset), before anything is written."""
    settings_for(options)


class Jobs:
    """The server's job manager once the server started: the jobs routes and the lifespan share it."""

    def __init__(self) -> None:
        self.manager: JobManager | None = None

    def require(self) -> JobManager:
        """The job manager; 503 before the server started it or after it stopped."""
        if self.manager is None:
            raise unavailable("the jobs are not available now", code="jobs_unavailable", retry_after=1)
        return self.manager

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """Start the job manager with the server (reloading the jobs folder) and stop it at shutdown."""
        state = app[STATE]
        options = state.run_options.get(WebOptions)
        manager = JobManager(state, options if isinstance(options, WebOptions) else WebOptions())
        await manager.start()
        self.manager = manager
        try:
            yield
        finally:
            self.manager = None
            await manager.stop()
