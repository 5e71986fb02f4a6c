"""The generation service: from a validated request to the engine's deltas.

It renders chat messages with the model's prompt format, checks the prompt against the context, builds the
sampling parameters, admits the request through the scheduler and runs it through
``sakura_core.generation.generate`` (plugin hooks around the engine), keeping the metrics. Nothing here knows
HTTP: routes turn what it yields into JSON or server-sent events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from pydantic import ValidationError

from sakura_core.engine import EngineError, EngineUnavailableError
from sakura_core.engine_runner import EngineRunner
from sakura_core.generation import generate
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import MessagesError, validate_messages
from sakura_core.server.errors import APIError, from_validation_error, invalid_request, server_error, unavailable
from sakura_core.server.limits import max_prompt_chars
from sakura_core.server.metrics import GenerationRecord, ServerMetrics
from sakura_core.server.sampling import combined_stop
from sakura_core.server.scheduler import QueueFullError, Scheduler, SchedulerClosedError, Ticket
from sakura_core.types import Delta, GenerationRequest, ModelInfo, SamplingParams

logger = logging.getLogger(__name__)

#: max_tokens when a client sends none (Sakura's recommended max_new_tokens).
DEFAULT_MAX_TOKENS = 512
#: Seconds a client told "queue full" is asked to wait before retrying.
QUEUE_FULL_RETRY_AFTER = 2
#: Seconds a client told "the engine is unavailable" is asked to wait before retrying.
ENGINE_UNAVAILABLE_RETRY_AFTER = 5


def engine_failure(exc: Exception, failed: str, request_id: str = "") -> APIError:
    """The API error for an engine failure: 503 when the engine says it is temporary, else 500.

    ``failed`` starts the message (``the engine failed``). An ``EngineError`` is the engine's own word: one log
    line and its message to the client. Anything else is a bug in the engine, logged with its traceback.
    """
    about = f" (request {request_id})" if request_id else ""
    if isinstance(exc, EngineUnavailableError):
        logger.warning("%s%s: the engine is unavailable: %s", failed, about, exc)
        logger.debug("engine failure", exc_info=exc)
        return unavailable(
            f"the engine is unavailable: {exc}", code="engine_unavailable", retry_after=ENGINE_UNAVAILABLE_RETRY_AFTER
        )
    if isinstance(exc, EngineError):
        logger.warning("%s%s: %s", failed, about, exc)
        logger.debug("engine failure", exc_info=exc)
        return server_error(f"{failed}: {exc}", code="engine_error")
    logger.error("%s%s: %s: %s", failed, about, type(exc).__name__, exc, exc_info=exc)
    return server_error(f"{failed}: {type(exc).__name__}: {exc}", code="engine_error")


class GenerationService:
    """Runs generations for the routes, for one loaded model."""

    def __init__(
        self,
        runner: EngineRunner,
        registry: PluginRegistry,
        model_info: ModelInfo,
        scheduler: Scheduler,
        metrics: ServerMetrics,
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.model_info = model_info
        self.scheduler = scheduler
        self.metrics = metrics
        self.prompt_format = registry.prompt_format(model_info.prompt_format)

    def render(self, messages: Sequence[dict[str, Any]]) -> str:
        """The raw prompt for chat ``messages``; 400 for an empty list or an unknown role (never for order)."""
        try:
            validate_messages(messages)
        except MessagesError as exc:
            raise invalid_request(str(exc), param="messages") from None
        return self.prompt_format.render(messages)

    async def prepare(
        self,
        prompt: str,
        sampling: dict[str, Any],
        *,
        max_tokens: int | None,
        messages: Sequence[dict[str, Any]] | None = None,
        prompt_param: str = "prompt",
    ) -> GenerationRequest:
        """A generation request for ``prompt``, checked against the model's context.

        ``max_tokens`` None means as many tokens as the context leaves; a larger value is lowered to that.
        The prompt format's stop strings are added to the client's. A prompt too long to fit the context
        whatever it says is refused by its length before it is tokenised; a long one is counted off the loop.
        """
        context = self.model_info.context_length
        if len(prompt) > max_prompt_chars(context):
            raise invalid_request(
                f"the prompt is {len(prompt)} characters; a context of {context} tokens per sequence cannot hold"
                f" more than {max_prompt_chars(context)}: send a shorter text",
                param=prompt_param,
                code="context_length_exceeded",
            )
        try:
            prompt_tokens = await self.runner.count_tokens(prompt)
        except Exception as exc:
            raise engine_failure(exc, "the engine could not count the prompt's tokens") from exc
        if prompt_tokens >= context:
            raise invalid_request(
                f"the prompt is {prompt_tokens} tokens but the model's context is {context} tokens per sequence;"
                " send a shorter text",
                param=prompt_param,
                code="context_length_exceeded",
            )
        room = context - prompt_tokens
        limit = room if max_tokens is None else min(max_tokens, room)
        stop = combined_stop(sampling.get("stop", ()), self.prompt_format.stop)
        try:
            params = SamplingParams(**{**sampling, "max_tokens": limit, "stop": stop})
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        request_id = uuid.uuid4().hex
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("request %s: %d prompt tokens, %s\nprompt: %r", request_id, prompt_tokens, params, prompt)
        return GenerationRequest(
            prompt=prompt,
            params=params,
            messages=list(messages) if messages is not None else None,
            request_id=request_id,
            prompt_tokens=prompt_tokens,
        )

    def admit(self) -> Ticket:
        """A place for one generation: a slot, or a place in the queue; 503 when the queue is full or the engine
        reports that it cannot serve."""
        if self.runner.problem is not None:
            raise unavailable(
                f"the engine is unavailable: {self.runner.problem}",
                code="engine_unavailable",
                retry_after=ENGINE_UNAVAILABLE_RETRY_AFTER,
            )
        try:
            return self.scheduler.reserve()
        except QueueFullError as exc:
            raise unavailable(
                f"the server is busy ({exc}); retry later", code="queue_full", retry_after=QUEUE_FULL_RETRY_AFTER
            ) from None
        except SchedulerClosedError:
            raise unavailable("the server is shutting down", code="shutting_down") from None

    async def stream(
        self, ticket: Ticket, request: GenerationRequest, record: GenerationRecord
    ) -> AsyncGenerator[Delta, None]:
        """Wait for the ticket's slot, then yield the engine's deltas; ``record`` follows along.

        Consume it inside ``contextlib.aclosing``: stopping early (or cancelling the consuming task) closes the
        engine's stream and frees the slot at once. Engine failures become APIErrors with the engine's message: 503
        when the engine says it is temporarily unavailable, else 500.
        """
        try:
            await ticket.wait()
            self.metrics.start(record)
            deltas = cast(AsyncGenerator[Delta, None], generate(self.runner, self.registry, request, self.model_info))
            try:
                async for delta in deltas:
                    record.observe(delta)
                    self.metrics.token_event(self.scheduler.active)
                    yield delta
            finally:
                await deltas.aclose()
        except (APIError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            record.outcome = "error"
            raise engine_failure(exc, "the engine failed", request.request_id) from exc
        finally:
            ticket.release()
            if record.outcome in ("queued", "running"):
                record.outcome = "cancelled"
            self.metrics.finish(record)
