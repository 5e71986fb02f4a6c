"""The generation service: a loaded model's generation path, admitted and measured, its failures as API errors.

It prepares requests through the model's ``LoadedModel`` (which renders, counts, fits the request to the context and
merges stop strings), admits them through the scheduler, runs them and keeps the metrics. Nothing here knows HTTP
beyond the API errors it raises: routes turn what it yields into JSON or server-sent events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from sakura_core.engine import EngineError, EngineUnavailableError
from sakura_core.loaded_model import LoadedModel, PromptTooLongError
from sakura_core.server.generation.metrics import GenerationRecord, ServerMetrics
from sakura_core.server.generation.scheduler import QueueFullError, Scheduler, SchedulerClosedError, Ticket
from sakura_core.server.http.errors import APIError, from_validation_error, invalid_request, server_error, unavailable
from sakura_core.types import Delta, GenerationRequest, ModelInfo

logger = logging.getLogger(__name__)

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

    def __init__(self, model: LoadedModel, scheduler: Scheduler, metrics: ServerMetrics) -> None:
        self.model = model
        self.scheduler = scheduler
        self.metrics = metrics

    @property
    def model_info(self) -> ModelInfo:
        """The served model's identity."""
        return self.model.info

    async def prepare(
        self,
        prompt: str,
        sampling: Mapping[str, Any],
        *,
        max_tokens: int | None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        prompt_param: str = "prompt",
        client: str | None = None,
    ) -> GenerationRequest:
        """``LoadedModel.prepare``, its refusals as 400s: a prompt the context cannot hold (``prompt_param`` names
        the field at fault), a sampling value out of range; an engine that cannot count as 500 or 503. ``client``
        (an address) takes turns with other clients for the counting thread."""
        try:
            return await self.model.prepare(prompt, sampling, max_tokens=max_tokens, messages=messages, client=client)
        except PromptTooLongError as exc:
            raise invalid_request(str(exc), param=prompt_param, code="context_length_exceeded") from None
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        except Exception as exc:
            raise engine_failure(exc, "the engine could not count the prompt's tokens") from exc

    def admit(self) -> Ticket:
        """A place for one generation: a slot, or a place in the queue; 503 when the queue is full or the engine
        reports that it cannot serve."""
        problem = self.model.runner.problem
        if problem is not None:
            raise unavailable(
                f"the engine is unavailable: {problem}",
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
        when the engine says it is temporarily unavailable, else 500. A prompt that a ``before_generate`` hook made
        too long for the context is a 400.
        """
        try:
            await ticket.wait()
            self.metrics.start(record)
            deltas = self.model.stream(request)
            try:
                async for delta in deltas:
                    record.observe(delta)
                    self.metrics.token_event(self.scheduler.active)
                    yield delta
            finally:
                await deltas.aclose()
        except (APIError, asyncio.CancelledError, GeneratorExit):
            raise
        except PromptTooLongError as exc:
            record.outcome = "error"
            raise invalid_request(str(exc), param="prompt", code="context_length_exceeded") from None
        except Exception as exc:
            record.outcome = "error"
            raise engine_failure(exc, "the engine failed", request.request_id) from exc
        finally:
            ticket.release()
            if record.outcome in ("queued", "running"):
                record.outcome = "shutting_down" if ticket.ended_by_server else "cancelled"
            self.metrics.finish(record)
