"""Running an admitted generation for a route: to the end (one JSON answer) or as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from sakura_core.server.errors import APIError, server_error
from sakura_core.server.keys import RECORD, STATE, STREAMED
from sakura_core.server.metrics import GenerationRecord
from sakura_core.server.scheduler import Ticket
from sakura_core.server.sse import EventStream
from sakura_core.types import Delta, FinishReason, GenerationRequest

logger = logging.getLogger(__name__)


class EventRenderer(Protocol):
    """Turns a generation into one route's stream events, each the JSON of one of the route's event models."""

    #: True when the stream ends with ``data: [DONE]``.
    done_marker: bool

    def opening(self) -> Sequence[bytes]:
        """Events sent as soon as the stream opens (before the slot is granted)."""
        ...

    def delta(self, delta: Delta) -> Sequence[bytes]:
        """Events for one engine delta."""
        ...

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        """Events after the last delta."""
        ...


@dataclass
class Completed:
    """A generation run to its end."""

    text: str
    finish_reason: FinishReason
    record: GenerationRecord


async def run_to_end(request: web.Request, ticket: Ticket, generation: GenerationRequest) -> Completed:
    """Run the generation and join its text. A client that disconnects cancels the handler, and with it this."""
    service = request.app[STATE].require_service()
    record = _record_for(request)
    pieces: list[str] = []
    finish: FinishReason = "stop"
    try:
        async with contextlib.aclosing(service.stream(ticket, generation, record)) as deltas:
            async for delta in deltas:
                pieces.append(delta.text)
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
    finally:
        ticket.release()
    return Completed("".join(pieces), finish, record)


async def run_as_events(
    request: web.Request, ticket: Ticket, generation: GenerationRequest, renderer: EventRenderer
) -> web.StreamResponse:
    """Stream the generation as server-sent events rendered by ``renderer``.

    Headers go out at once; ``: ping`` comments keep the connection busy while the request waits. An engine
    failure after the headers becomes one ``data: {"error": ...}`` event. A client that goes away cancels the
    generation (its slot is freed at once).
    """
    state = request.app[STATE]
    service = state.require_service()
    record = _record_for(request)
    request[STREAMED] = True
    events = EventStream(request, state.settings.sse_ping_seconds)
    try:
        async with events:
            try:
                for event in renderer.opening():
                    await events.send_json(event)
                async with contextlib.aclosing(service.stream(ticket, generation, record)) as deltas:
                    async for delta in deltas:
                        for event in renderer.delta(delta):
                            await events.send_json(event)
                for event in renderer.closing(record):
                    await events.send_json(event)
                if renderer.done_marker:
                    await events.send_done()
            except APIError as exc:
                await _end_with_error(events, renderer, exc)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:  # headers are out: the error can only be an event now
                logger.exception("internal error while streaming %s", request.path)
                await _end_with_error(
                    events, renderer, server_error(f"internal server error: {type(exc).__name__}: {exc}")
                )
    except ConnectionError:
        if record.outcome in ("queued", "running"):
            record.outcome = "cancelled"
    finally:
        ticket.release()
    return events.response


async def _end_with_error(events: EventStream, renderer: EventRenderer, error: APIError) -> None:
    """A stream the server ends itself: the error event, then the end marker where the route has one."""
    await events.send_error(error)
    if renderer.done_marker:
        await events.send_done()


def _record_for(request: web.Request) -> GenerationRecord:
    record = GenerationRecord()
    request[RECORD] = record
    return record
