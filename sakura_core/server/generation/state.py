"""What every route shares: settings, engine, plugins, auth, metrics, and once loaded, the model and service."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from sakura_core.engine import Engine
from sakura_core.limits import max_body_bytes
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.server.generation.metrics import Gauges, ServerMetrics
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
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.auth = auth if auth is not None else resolve_auth(settings)
        self.metrics = ServerMetrics()
        self.phase = Phase.LOADING
        self.created = int(time.time())
        #: The loaded model's generation path (None while loading).
        self.model: LoadedModel | None = None
        self.scheduler: Scheduler | None = None
        self.service: GenerationService | None = None
        #: The one thread that parses large request bodies (started on the first one).
        self._body_parser: ThreadPoolExecutor | None = None

    @property
    def model_info(self) -> ModelInfo | None:
        """The served model's identity (None while loading)."""
        return self.model.info if self.model is not None else None

    def set_ready(self, model: LoadedModel) -> None:
        """The model is loaded: admit requests up to the engine's parallelism."""
        self.model = model
        self.scheduler = Scheduler(self.engine.parallelism, self.settings.max_queue)
        self.service = GenerationService(model, self.scheduler, self.metrics)
        self.phase = Phase.READY

    def begin_stopping(self) -> None:
        """Shutdown started: new generations get 503."""
        self.phase = Phase.STOPPING
        if self.scheduler is not None:
            self.scheduler.close()

    def close(self) -> None:
        """Release what the state holds (the engine runner's counting thread)."""
        if self.model is not None:
            self.model.runner.close()
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

    def gauges(self) -> Gauges | None:
        """Scheduler and model values for /metrics (None while loading)."""
        if self.scheduler is None or self.model_info is None:
            return None
        return Gauges(
            queue_depth=self.scheduler.waiting,
            active=self.scheduler.active,
            slots=self.scheduler.capacity,
            context_length=self.model_info.context_length,
        )
