"""The pipeline's way of generating inside the server: through the GenerationService, its scheduler, slots, queue
and metrics, as an API client's request goes."""

from __future__ import annotations

import asyncio

from sakura_translate.backends import Backend
from sakura_translate.errors import ContextOverflow, GenerationError

from sakura_core.loaded_model import join_deltas
from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.scheduler import Ticket
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.errors import APIError
from sakura_core.types import GenerationRequest, GenerationResult

#: Seconds between tries for a place while the server's queue is full.
QUEUE_FULL_RETRY_SECONDS = 0.5
#: The client the jobs' generations count against in the counting thread's turns.
JOBS_CLIENT = "sakura-web jobs"


class ServerStopping(GenerationError):
    """The server is shutting down: the job is left to continue at the next start."""


class ServiceBackend(Backend):
    """Generates each request of the pipeline through the server's GenerationService: it takes a ticket like any
    client (FIFO with everyone else's), so a job never holds a slot an API client has waited for longer."""

    def __init__(self, service: GenerationService) -> None:
        self.service = service
        self.model_id = service.model_info.id
        self.prompt_format = service.model.prompt_format
        self.parallelism = service.scheduler.capacity
        self.where = "this server"
        #: Generations run through this backend (for the log).
        self.generations = 0

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        """Prepare, admit (waiting while the queue is full) and run ``request`` to its end."""
        params = request.params
        try:
            prepared = await self.service.prepare(
                request.prompt,
                params.model_dump(exclude={"max_tokens"}),
                max_tokens=params.max_tokens,
                messages=request.messages,
                client=JOBS_CLIENT,
            )
        except APIError as exc:
            if exc.code == "context_length_exceeded":
                raise ContextOverflow(f"this server cannot take the chunk: {exc.message}") from None
            raise GenerationError(f"this server cannot take the chunk: {exc.message}") from None
        ticket = await self._admit()
        self.generations += 1
        try:
            return await join_deltas(self.service.stream(ticket, prepared, GenerationRecord()))
        except asyncio.CancelledError:
            if ticket.ended_by_server:  # the shutdown's grace ran out: not a cancel of the job
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                raise ServerStopping("the server is shutting down") from None
            raise
        except APIError as exc:
            raise GenerationError(f"the engine failed: {exc.message}") from None
        finally:
            ticket.release()

    async def _admit(self) -> Ticket:
        while True:
            try:
                return self.service.admit()
            except APIError as exc:
                if exc.code == "queue_full":
                    await asyncio.sleep(QUEUE_FULL_RETRY_SECONDS)
                    continue
                if exc.code == "shutting_down":
                    raise ServerStopping("the server is shutting down") from None
                raise GenerationError(exc.message) from None
