"""One replica: the chosen engine, loaded with the front's engine options and model, inside a Ray Serve deployment.

The front (``RayEngine``) calls these methods through a Serve deployment handle. Generations stream back through
Serve's streaming handles: first the replica's id, then one tuple per engine delta. A replica runs at most its
engine's ``parallelism`` generations at once and makes the others wait; the other calls (token counts, state)
never wait behind generations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sakura_core.engine import Engine, EngineOptions
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.types import FinishReason, ModelInfo, SamplingParams
from sakura_ray.autoscaling import SLOTS_METRIC

logger = logging.getLogger(__name__)

#: Seconds a replica's engine health check may take.
HEALTH_CHECK_SECONDS = 1.0
#: Seconds a generation on a replica may make no progress before the replica reports itself wedged (as the
#: server's ``--stall-timeout`` default).
STALL_SECONDS = 300.0
#: One delta on the wire: text, prompt tokens, completion tokens, finish reason (a tuple pickles fastest).
WireDelta = tuple[str, int, int, FinishReason | None]


@dataclass(frozen=True)
class ReplicaDescription:
    """What the front learns from a replica that loaded the model."""

    replica_id: str
    model_info: ModelInfo
    parallelism: int


@dataclass(frozen=True)
class ReplicaState:
    """A replica's engine, as the replica sees it."""

    replica_id: str
    #: Generations running in the engine (from the first request to the engine until its stream is closed).
    active: int
    #: Generations waiting for one of the replica's slots.
    waiting: int
    #: Generations started since the replica started.
    served: int
    parallelism: int


class EngineReplica:
    """The deployment class: built by Ray Serve on each replica with the front's engine class, options and model."""

    async def __init__(  # type: ignore[misc]  # Ray Serve awaits an async constructor
        self,
        engine_class: type[Engine],
        engine_options: EngineOptions,
        model: str,
        model_version: str | None,
        log_level: int = logging.INFO,
    ) -> None:
        from ray import serve

        logging.getLogger("sakura_core").setLevel(log_level)
        self.replica_id: str = serve.get_replica_context().replica_id.unique_id
        self.engine = engine_class(engine_options)
        self.waiting = 0
        self._closed = False
        # a ModelLoadError fails the replica's start: the front reports its message (see sakura_ray.deployment)
        #: The identity as the engine reports it: the front chooses the prompt format, with its own plugins.
        self.model_info: ModelInfo = await self.engine.load(model, model_version)
        #: The engine run by the core's rules, as a server in one process runs it (counts, stop strings, length);
        #: the front renders, fits to the context and runs the plugin hooks, so only its runner is used here.
        self.model = LoadedModel(self.engine, PluginRegistry.create(entry_points=False), self.model_info)
        self.runner = self.model.runner
        self.parallelism = self.engine.parallelism
        self._slots = asyncio.Semaphore(self.parallelism)

    async def describe(self) -> ReplicaDescription:
        """The loaded model's identity and the engine's parallelism."""
        return ReplicaDescription(self.replica_id, self.model_info, self.parallelism)

    async def count_tokens(self, text: str) -> int:
        """The engine's token count of ``text`` as a prompt (a blocking count runs in a thread)."""
        return await self.runner.count_tokens(text)

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | WireDelta]:
        """The replica's id, then the engine's deltas as tuples. Cancelled by the front, it closes the engine's
        stream, which frees the engine's sequence."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield self.replica_id
            stream = self.runner.stream(prompt, params)
            try:
                async for delta in stream:
                    yield (delta.text, delta.prompt_tokens, delta.completion_tokens, delta.finish_reason)
            finally:
                await stream.aclose()
        finally:
            self._slots.release()

    async def state(self) -> ReplicaState:
        """What runs and waits here now."""
        return ReplicaState(self.replica_id, self.runner.active, self.waiting, self.runner.started, self.parallelism)

    async def health(self) -> str | None:
        """This replica's engine's own word on whether it serves (None: it does, or it reports no health), or the
        watchdog's when a generation here has made no progress for ``STALL_SECONDS``."""
        if self.runner.reports_health:
            problem = await self.runner.check_health(within=HEALTH_CHECK_SECONDS)
            if problem is not None:
                return problem
        return self.runner.check_progress(STALL_SECONDS)

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Metrics for the autoscaling policy: this replica's slots."""
        return {SLOTS_METRIC: float(self.parallelism)}

    async def __del__(self) -> None:
        """Called by Ray Serve when the replica stops: close the engine once."""
        if not self._closed:
            self._closed = True
            await self.model.close()
