"""The front's stand-in engine: the chosen engine's replicas on Ray Serve, seen by sakura's server as one engine.

The server keeps doing what it always does (routes, auth, admission, SSE); this engine forwards what reaches it
to the replicas through a Ray Serve deployment handle. Ray is imported in ``load``, never before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sakura_core.engine import Engine, EngineError, EngineUnavailableError, ModelLoadError
from sakura_core.types import Delta, ModelInfo, SamplingParams
from sakura_ray.cluster import first_line
from sakura_ray.options import RayOptions

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

    from sakura_ray.cluster import RayConnection
    from sakura_ray.replica import ReplicaDescription, ReplicaState

logger = logging.getLogger(__name__)

#: Times a generation is sent to another replica when the one it went to was lost before it streamed anything.
RETRIES = 3
#: Seconds before the first such retry (doubled for each next one): Ray Serve learns of a lost replica quickly.
RETRY_PAUSE = 0.2
#: Seconds a replica may take to count a prompt's tokens.
COUNT_SECONDS = 30.0
#: Seconds the replicas may take to answer a question sent to all of them.
BROADCAST_SECONDS = 30.0
#: Seconds deleting the replicas may take at shutdown.
DELETE_SECONDS = 60.0


class ReplicaLostError(EngineUnavailableError):
    """The replica running a generation was lost (its process or machine died, or became unreachable).

    Temporary: the server answers 503, Ray Serve replaces the replica, and the other replicas serve on.
    """


class RayEngine(Engine):
    """Stands in for an engine of any kind whose replicas run on a Ray cluster, each loading the same model."""

    name: ClassVar[str] = "ray"
    description: ClassVar[str] = "Any engine as replicas on a Ray cluster (sakura-ray)"
    #: Each replica runs its engine through the core's rules (stop strings included): the front need not again.
    handles_stop_strings: ClassVar[bool] = True

    def __init__(self, engine: Engine, options: RayOptions) -> None:
        super().__init__()
        #: The engine each replica runs, and its options (the user's engine options).
        self.engine_class: type[Engine] = type(engine)
        self.engine_options = engine.options
        self.ray_options = options
        #: The Ray Serve application of this front's replicas.
        self.app_name = f"sakura-{self.engine_class.name}-{uuid.uuid4().hex[:8]}"
        #: The engine parallelism of one replica, known once loaded.
        self.replica_parallelism = 0
        #: Generations started, by replica id.
        self.served_by: Counter[str] = Counter()
        self._active = 0
        self._handle: DeploymentHandle | None = None
        self._stream: DeploymentHandle | None = None
        self._connection: RayConnection | None = None
        self._deployed = False
        self._lost: tuple[type[BaseException], ...] = ()

    # -- loading ---------------------------------------------------------------------------------------------

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        from sakura_ray import cluster, deployment

        cluster.prepare_process()
        options = self.ray_options
        self._lost = _lost_replica_errors()
        self._connection = await cluster.connect_async(options.ray_address)
        scale = (
            f"{options.first_replicas} to {options.most_replicas} replicas (autoscaling)"
            if options.autoscaling
            else f"{options.first_replicas} replica(s)"
        )
        logger.info(
            "starting %s of the %s engine on %s (Ray Serve application %s)",
            scale,
            self.engine_class.name,
            self._connection.describe(),
            self.app_name,
        )
        try:
            await asyncio.to_thread(cluster.check_room, options.first_replicas, options.cpus, options.gpus)
            self._deployed = True
            self._handle = await cluster.in_daemon_thread(
                lambda: deployment.deploy(
                    self.app_name, self.engine_class, self.engine_options, model, model_version, options
                ),
                within=None,
            )
            self._stream = self._handle.options(stream=True)
            descriptions = await self._broadcast("describe")
        except ModelLoadError:
            await self.close()
            raise
        except BaseException as exc:
            await self.close()
            if isinstance(exc, Exception):
                raise ModelLoadError(f"Ray Serve could not start the replicas: {first_line(exc)}") from None
            raise
        return await self._adopt(descriptions)

    async def _adopt(self, descriptions: list[ReplicaDescription]) -> ModelInfo:
        """Take the model's identity and parallelism from the replicas."""
        if not descriptions:
            await self.close()
            raise ModelLoadError("no replica of the Ray Serve application answered; see the Ray cluster's logs")
        self.replica_parallelism = min(d.parallelism for d in descriptions)
        self.model_info = descriptions[0].model_info
        logger.info(
            "%d replica(s) ready, %d parallel sequences each: admitting %d generations at once",
            len(descriptions),
            self.replica_parallelism,
            self.parallelism,
        )
        return self.model_info

    # -- serving ---------------------------------------------------------------------------------------------

    @property
    def parallelism(self) -> int:
        """The replicas' summed parallelism (at the most replicas when autoscaling)."""
        return max(1, self.replica_parallelism * self.ray_options.most_replicas)

    @property
    def active_generations(self) -> int:
        """Generations this front has running on replicas."""
        return self._active

    async def count_tokens(self, text: str) -> int:
        """A replica's count: one round trip to the cluster, awaited on the event loop."""
        handle = self._loaded()
        for attempt in itertools.count():
            try:
                return int(await asyncio.wait_for(handle.count_tokens.remote(text), COUNT_SECONDS))
            except self._lost as exc:
                if attempt >= RETRIES:
                    raise ReplicaLostError(f"no replica could count the prompt's tokens: {first_line(exc)}") from None
            except TimeoutError:
                raise ReplicaLostError(f"no replica counted the prompt's tokens within {COUNT_SECONDS:g} s") from None
            except Exception as exc:
                raise _engine_error(exc) from None
        raise AssertionError("unreachable")

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        stream = self._loaded(streaming=True)
        self._active += 1
        try:
            for attempt in itertools.count():
                response = cast("DeploymentResponseGenerator[Any]", stream.generate.remote(prompt, params))
                forwarded = ended = False
                try:
                    replica_id = await anext(response)
                    self.served_by[replica_id] += 1
                    async for text, prompt_tokens, completion_tokens, finish_reason in response:
                        forwarded = True
                        yield Delta(text, prompt_tokens, completion_tokens, finish_reason)
                    ended = True
                    return
                except self._lost as exc:
                    ended = True
                    if forwarded or attempt >= RETRIES:
                        raise ReplicaLostError(
                            f"the replica running this generation was lost ({first_line(exc)}); retry the request"
                        ) from None
                    logger.warning(
                        "a replica was lost before it started a generation (%s); sending it to another",
                        first_line(exc),
                    )
                    await asyncio.sleep(RETRY_PAUSE * 2**attempt)
                except Exception as exc:
                    ended = True
                    raise _engine_error(exc) from None
                finally:
                    if not ended:  # closed or cancelled mid-stream: the replica's engine frees the sequence
                        response.cancel()
        finally:
            self._active -= 1

    async def replica_states(self) -> list[ReplicaState]:
        """What runs and waits on each live replica, asked of all of them at once."""
        return await self._broadcast("state")

    async def health(self) -> str | None:
        """None while at least one replica says its engine serves; else why none does (no replica answers, or
        each one's reason)."""
        if self._handle is None:
            return "the Ray replicas are not running"
        try:
            answers = await self._broadcast("health")
        except Exception as exc:
            return f"the Ray replicas cannot be reached: {first_line(exc)}"
        return replicas_health(answers)

    # -- shutdown --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Delete the replicas' application, then leave the cluster (stopping a private Ray)."""
        from sakura_ray import cluster, deployment

        if self._deployed:
            self._deployed = False
            try:
                await cluster.in_daemon_thread(lambda: deployment.delete(self.app_name), DELETE_SECONDS)
            except Exception as exc:
                logger.warning("could not delete the Ray Serve application %s: %s", self.app_name, first_line(exc))
        self._handle = self._stream = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(connection.close)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _loaded(self, streaming: bool = False) -> DeploymentHandle:
        handle = self._stream if streaming else self._handle
        if handle is None:
            raise EngineError("the replicas are not running: load() first")
        return handle

    async def _broadcast(self, method: str) -> list[Any]:
        """``method``'s answers from every live replica (replicas that fail to answer are left out)."""
        answers = (
            await self._loaded().broadcast(method).results_async(timeout_s=BROADCAST_SECONDS, return_exceptions=True)
        )
        return [answer for answer in answers if not isinstance(answer, BaseException)]


def replicas_health(answers: list[str | None]) -> str | None:
    """The front's health from its replicas' answers: None when one serves, else why none does."""
    if not answers:
        return "no Ray replica answers"
    if any(answer is None for answer in answers):
        return None
    return "no Ray replica can serve: " + "; ".join(sorted({str(answer) for answer in answers}))


def _lost_replica_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a replica that is gone or unreachable (as opposed to an error its engine raised)."""
    from ray.exceptions import LocalRayletDiedError, NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    return (
        RayActorError,
        WorkerCrashedError,
        NodeDiedError,
        LocalRayletDiedError,
        ObjectLostError,
        ReplicaUnavailableError,
        DeploymentUnavailableError,
    )


def _engine_error(exc: BaseException) -> EngineError:
    """An error raised on a replica, as the front's EngineError with the replica engine's own message."""
    cause = getattr(exc, "cause", None) or exc
    message = first_line(cause)
    if isinstance(cause, EngineUnavailableError):
        return EngineUnavailableError(message)
    return EngineError(message)
