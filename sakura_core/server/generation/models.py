"""The models one server serves: each with its own scheduler and service, found by id or alias, loaded on demand.

A request's ``model`` picks one by its served id or an alias; ``""``, ``None`` and names no model answers to go to
the default model (the first), as the clients that send ``"gpt-3.5-turbo"`` or nothing expect. With one model the
table holds one entry and every request goes to it.

A model given with a loader and not loaded yet is loaded by the first request that names it (its requests wait,
bounded; the event loop keeps serving the others). Past ``max_loaded`` the least recently used idle model is
unloaded first; ``ttl`` unloads a model idle that long. A model that fails to load answers its requests with a
503, and is tried again once ``FAILED_LOAD_COOLDOWN_SECONDS`` have passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from enum import StrEnum

from sakura_core.loaded_model import LoadedModel
from sakura_core.server.generation.metrics import ServerMetrics
from sakura_core.server.generation.scheduler import Scheduler
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.errors import unavailable

logger = logging.getLogger(__name__)

#: Loads one model (with its own engine).
Loader = Callable[[], Awaitable[LoadedModel]]
#: Seconds a client told "the model is loading" is asked to wait before retrying.
MODEL_LOADING_RETRY_AFTER = 5
#: Seconds after a failed load during which the model's requests get the failure at once; the next one after
#: tries loading again (a file still being copied, a busy GPU).
FAILED_LOAD_COOLDOWN_SECONDS = 60.0


class ModelStatus(StrEnum):
    """Where a served model is in its life (llama-server's router names)."""

    LOADED = "loaded"
    LOADING = "loading"
    UNLOADED = "unloaded"
    FAILED = "failed"


class ServedModel:
    """One model as the server serves it: its generation path and admission while loaded, the names it answers
    to, and how to load it again."""

    def __init__(self, name: str, source: str, aliases: Sequence[str], loader: Loader | None) -> None:
        #: The served id while not loaded (the file's base name); the loaded model's id once loaded.
        self.name = name
        self.source = source
        self.aliases = tuple(aliases)
        self.loader = loader
        self.model: LoadedModel | None = None
        self.scheduler: Scheduler | None = None
        self.service: GenerationService | None = None
        #: Why the last load failed (None: it did not fail), and when.
        self.failure: str | None = None
        self.failed_at = 0.0
        self.loading: asyncio.Task[LoadedModel] | None = None
        #: Requests between choosing this model and finishing (an idle model has none).
        self.users = 0
        self.last_used = time.monotonic()

    @property
    def id(self) -> str:
        """The served id (``/v1/models`` ``id``)."""
        return self.model.info.id if self.model is not None else self.name

    @property
    def status(self) -> ModelStatus:
        if self.model is not None:
            return ModelStatus.LOADED
        if self.loading is not None:
            return ModelStatus.LOADING
        return ModelStatus.FAILED if self.failure is not None else ModelStatus.UNLOADED

    @property
    def idle(self) -> bool:
        """Loaded, and no request uses it."""
        return self.model is not None and self.users == 0

    def answers_to(self, name: str) -> bool:
        """Whether a request's ``model`` names this model (its id, an alias, or the id with ``.gguf``)."""
        return name in (self.id, f"{self.id}.gguf", self.name) or name in self.aliases


class ModelTable:
    """The served models in order, the default one first, and which of them are loaded."""

    def __init__(
        self, metrics: ServerMetrics, max_queue: int, max_loaded: int = 0, load_wait_seconds: float = 600.0
    ) -> None:
        self.metrics = metrics
        self.max_queue = max_queue
        #: Models loaded at once (0: no bound).
        self.max_loaded = max_loaded
        #: Longest a request waits for its model to load before a 503.
        self.load_wait_seconds = load_wait_seconds
        self._entries: list[ServedModel] = []

    def add(self, model: LoadedModel, aliases: Sequence[str] = (), loader: Loader | None = None) -> ServedModel:
        """Serve the loaded ``model`` (admitting up to its engine's parallelism); the first added is the default."""
        entry = ServedModel(model.info.id, model.info.path, aliases, loader)
        self._attach(entry, model)
        self._entries.append(entry)
        return entry

    def register(self, name: str, source: str, aliases: Sequence[str], loader: Loader) -> ServedModel:
        """Serve a model not loaded yet: ``loader`` loads it on the first request that names it."""
        entry = ServedModel(name, source, aliases, loader)
        self._entries.append(entry)
        return entry

    def _attach(self, entry: ServedModel, model: LoadedModel) -> None:
        entry.model = model
        entry.scheduler = Scheduler(model.engine.parallelism, self.max_queue)
        entry.service = GenerationService(model, entry.scheduler, self.metrics)
        entry.failure = None
        entry.last_used = time.monotonic()

    def set_default(self, name: str) -> None:
        """Make the model that answers to ``name`` the default (first); ``KeyError`` when none does."""
        for index, entry in enumerate(self._entries):
            if entry.answers_to(name):
                self._entries.insert(0, self._entries.pop(index))
                return
        raise KeyError(name)

    @property
    def default(self) -> ServedModel | None:
        """The model for requests that name none (None before any is added)."""
        return self._entries[0] if self._entries else None

    def find(self, name: str | None) -> ServedModel | None:
        """The model a request's ``model`` names, by id or alias; the default for ``""``, None or an unknown name."""
        if name:
            for entry in self._entries:
                if entry.answers_to(name):
                    return entry
        return self.default

    def lookup(self, name: str) -> ServedModel | None:
        """The model that answers to ``name`` exactly (None when none does)."""
        return next((entry for entry in self._entries if entry.answers_to(name)), None)

    @contextlib.asynccontextmanager
    async def use(self, entry: ServedModel) -> AsyncIterator[GenerationService]:
        """The entry's service for one request, loading the model first when needed; while the request runs, the
        model is not unloaded. 503 when it failed to load or does not load within ``load_wait_seconds``."""
        entry.users += 1
        try:
            await self.ensure_loaded(entry)
            assert entry.service is not None
            entry.last_used = time.monotonic()
            yield entry.service
        finally:
            entry.users -= 1
            entry.last_used = time.monotonic()

    async def ensure_loaded(self, entry: ServedModel) -> None:
        """Load ``entry`` unless it is loaded (waiting for a load under way); 503 when it cannot be."""
        if entry.model is not None:
            return
        if entry.failure is not None and time.monotonic() - entry.failed_at >= FAILED_LOAD_COOLDOWN_SECONDS:
            entry.failure = None  # try again
        if entry.failure is not None:
            raise unavailable(
                f"the model {entry.id} could not be loaded: {entry.failure}",
                code="model_load_failed",
                retry_after=int(FAILED_LOAD_COOLDOWN_SECONDS),
            )
        if entry.loading is None:
            if entry.loader is None:
                raise unavailable(f"the model {entry.id} is not loaded", code="model_not_loaded")
            entry.loading = asyncio.ensure_future(self._load(entry))
        try:
            await asyncio.wait_for(asyncio.shield(entry.loading), self.load_wait_seconds)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the client went away: the load goes on for the others
            raise unavailable("the server is shutting down", code="shutting_down") from None
        except TimeoutError:
            raise unavailable(
                f"the model {entry.id} is still loading; retry shortly",
                code="model_loading",
                retry_after=MODEL_LOADING_RETRY_AFTER,
            ) from None
        except Exception:
            raise unavailable(
                f"the model {entry.id} could not be loaded: {entry.failure}", code="model_load_failed"
            ) from None

    async def _load(self, entry: ServedModel) -> LoadedModel:
        assert entry.loader is not None
        try:
            await self._make_room(entry)
            logger.info("loading the model %s", entry.id)
            model = await entry.loader()
        except Exception as exc:
            entry.failure = str(exc) or type(exc).__name__
            entry.failed_at = time.monotonic()
            logger.error("the model %s could not be loaded: %s", entry.id, entry.failure)
            raise
        finally:
            entry.loading = None
        self._attach(entry, model)
        logger.info("the model %s is loaded", entry.id)
        return model

    async def _make_room(self, entry: ServedModel) -> None:
        """Unload least recently used idle models until one more fits under ``max_loaded``."""
        if not self.max_loaded:
            return
        loaded = [other for other in self._entries if other.model is not None and other is not entry]
        while len(loaded) >= self.max_loaded:
            idle = [other for other in loaded if other.idle and other.loader is not None]
            if not idle:
                logger.warning("every loaded model is busy: loading %s past --models-max", entry.id)
                return
            victim = min(idle, key=lambda other: other.last_used)
            await self.unload(victim)
            loaded.remove(victim)

    async def unload(self, entry: ServedModel) -> bool:
        """Unload ``entry`` (its engine closed, its memory returned); False when it was not loaded. A model with
        a loader can be loaded again; queued requests of a closed scheduler get a 503."""
        model, scheduler = entry.model, entry.scheduler
        if model is None or scheduler is None:
            return False
        entry.model = entry.scheduler = entry.service = None
        entry.name = model.info.id
        scheduler.close()
        logger.info("unloading the model %s", entry.name)
        try:
            await model.close()
        except Exception:
            logger.warning("the model %s failed to close cleanly", entry.name, exc_info=True)
        return True

    async def unload_idle(self, ttl: float) -> None:
        """Unload every model (with a loader, so it can come back) idle for ``ttl`` seconds or more."""
        now = time.monotonic()
        for entry in self:
            if entry.idle and entry.loader is not None and now - entry.last_used >= ttl:
                await self.unload(entry)

    async def close(self) -> None:
        """Unload every model, after stopping the loads under way (a model loaded meanwhile is closed too)."""
        loads = [entry.loading for entry in self._entries if entry.loading is not None]
        for load in loads:
            load.cancel()
        for load in loads:
            with contextlib.suppress(BaseException):
                await load
        for entry in self:
            await self.unload(entry)

    def loaded(self) -> list[ServedModel]:
        return [entry for entry in self._entries if entry.model is not None]

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
