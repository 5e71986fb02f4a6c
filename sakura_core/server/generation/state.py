"""What every route shares: settings, engine, plugins, auth, metrics, and once loaded, the model and service."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from pydantic import BaseModel

from sakura_core.engine import Engine
from sakura_core.limits import max_body_bytes
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.server.generation.metrics import Gauges, ServerMetrics
from sakura_core.server.generation.models import Loader, ModelTable, ServedModel
from sakura_core.server.generation.scheduler import Scheduler
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.auth import AuthPolicy, resolve_auth
from sakura_core.server.http.errors import unavailable
from sakura_core.server.http.httpio import BodyLimits
from sakura_core.server.settings import ServerSettings
from sakura_core.types import ModelInfo

#: Seconds a client is asked to wait while the model loads.
LOADING_RETRY_AFTER = 5


class Phase(StrEnum):
    """Where the server is in its life."""

    LOADING = "loading"
    READY = "ready"
    STOPPING = "stopping"


class ServerState:
    """The server's shared state. Created before the model is loaded; ``set_ready`` completes it."""

    def __init__(
        self,
        settings: ServerSettings,
        engine: Engine,
        registry: PluginRegistry,
        auth: AuthPolicy | None = None,
        run_options: Mapping[type[BaseModel], BaseModel] | None = None,
    ) -> None:
        self.settings = settings
        #: The options plugins added to ``sakura run`` (``register_run_options``), as given, by options model.
        self.run_options: Mapping[type[BaseModel], BaseModel] = run_options or {}
        self.engine = engine
        self.registry = registry
        self.auth = auth if auth is not None else resolve_auth(settings)
        self.metrics = ServerMetrics()
        self.phase = Phase.LOADING
        self.created = int(time.time())
        #: Every served model, the default first (empty while loading).
        self.models = ModelTable(
            self.metrics, settings.max_queue, settings.models_max, settings.model_load_wait_seconds
        )
        #: The default model's generation path, scheduler and service (None while loading).
        self.model: LoadedModel | None = None
        self.scheduler: Scheduler | None = None
        self.service: GenerationService | None = None
        #: The one thread that parses large request bodies (started on the first one).
        self._body_parser: ThreadPoolExecutor | None = None

    @property
    def model_info(self) -> ModelInfo | None:
        """The served model's identity (None while loading)."""
        return self.model.info if self.model is not None else None

    def set_ready(
        self,
        model: LoadedModel,
        others: Sequence[tuple[LoadedModel, Sequence[str]]] = (),
        aliases: Sequence[str] = (),
    ) -> None:
        """The models are loaded: ``model`` (also named ``aliases``) is the default, ``others`` (each with its
        aliases) are served beside it; each admits requests up to its engine's parallelism."""
        entry = self.models.add(model, aliases)
        for other, other_aliases in others:
            self.models.add(other, other_aliases)
        self._use_default(entry)
        self.phase = Phase.READY

    def set_default(self, name: str) -> None:
        """Make the model that answers to ``name`` the default; ``KeyError`` when none does."""
        self.models.set_default(name)
        default = self.models.default
        assert default is not None
        self._use_default(default)

    def register(self, name: str, source: str, aliases: Sequence[str], loader: Loader) -> None:
        """Serve a model that ``loader`` loads on the first request naming it (``name``: its id until then)."""
        self.models.register(name, source, aliases, loader)

    def _use_default(self, entry: ServedModel) -> None:
        self.model = entry.model
        self.scheduler = entry.scheduler
        self.service = entry.service

    def served(self, name: str | None) -> ServedModel:
        """The model a request's ``model`` names (the default for none or an unknown name); 503 while loading."""
        self.require_service()
        entry = self.models.find(name)
        assert entry is not None
        return entry

    def begin_stopping(self) -> None:
        """Shutdown started: new generations get 503."""
        self.phase = Phase.STOPPING
        for entry in self.models:
            if entry.scheduler is not None:
                entry.scheduler.close()

    def close(self) -> None:
        """Release what the state holds (the engine runners' counting threads)."""
        for entry in self.models.loaded():
            assert entry.model is not None
            entry.model.runner.close()
        if self._body_parser is not None:
            self._body_parser.shutdown(wait=False, cancel_futures=True)
            self._body_parser = None

    def body_limits(self) -> BodyLimits:
        """How much of a request body to read: ``--max-body-size``, or less when the model's context could not
        hold a prompt that long anyway."""
        limit = self.settings.max_body_bytes
        reason = ""
        if self.model_info is not None:
            bound = max_body_bytes(self.model_info.context_length)
            if bound < limit:
                limit = bound
                reason = f"no prompt that fits the model's context of {self.model_info.context_length} tokens is longer"
        if self._body_parser is None:
            self._body_parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sakura-parse-body")
        return BodyLimits(
            executor=self._body_parser,
            max_bytes=limit,
            read_timeout=self.settings.body_timeout_seconds,
            deadline=self.settings.body_deadline_seconds,
            reason=reason,
        )

    def require_service(self) -> GenerationService:
        """The generation service, or 503 while the model is loading."""
        if self.service is None:
            raise unavailable(
                "the model is loading; retry shortly", code="model_loading", retry_after=LOADING_RETRY_AFTER
            )
        return self.service

    def require_model(self) -> ModelInfo:
        """The served model's identity, or 503 while the model is loading."""
        return self.require_service().model_info

    def gauges(self, entry: ServedModel | None = None) -> Gauges | None:
        """Scheduler and model values for /metrics, of the default model or ``entry`` (None while not loaded)."""
        scheduler, model = (self.scheduler, self.model) if entry is None else (entry.scheduler, entry.model)
        if scheduler is None or model is None:
            return None
        return Gauges(
            queue_depth=scheduler.waiting,
            active=scheduler.active,
            slots=scheduler.capacity,
            context_length=model.info.context_length,
        )
