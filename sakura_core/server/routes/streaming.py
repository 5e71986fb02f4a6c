"""Running an admitted generation for a route: to the end (one JSON answer) or as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.scheduler import Ticket
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.errors import APIError, server_error, unavailable
from sakura_core.server.http.logtext import escape_for_log
from sakura_core.server.http.sse import EventStream, SendTimeoutError
from sakura_core.server.keys import ENDED_BY_SERVER, RECORD, STATE, STREAMED
from sakura_core.types import Delta, FinishReason, GenerationRequest

logger = logging.getLogger(__name__)

#: Why the server ended a request itself (logged with the request).
SHUTTING_DOWN = "shutting down"
#: The outcome of a generation ended because its client read nothing for the send timeout.
SEND_TIMEOUT = "send_timeout"


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


async def run_to_end(
    request: web.Request, ticket: Ticket, generation: GenerationRequest, *, service: GenerationService | None = None
) -> Completed:
    """Run the generation on ``service`` (the default model's when None) and join its text. A client that
    disconnects cancels the handler, and with it this; a request the shutdown ends gets a 503."""
    if service is None:
        service = request.app[STATE].require_service()
    record = _record_for(request)
    pieces: list[str] = []
    try:
        async with contextlib.aclosing(service.stream(ticket, generation, record)) as deltas:
            async for delta in deltas:
                pieces.append(delta.text)
    except asyncio.CancelledError:
        if not ticket.ended_by_server:
            raise
        _ended_by_server(request)
        raise shutting_down() from None
    finally:
        ticket.release()
    return Completed("".join(pieces), record.finish_reason or "stop", record)


async def run_as_events(
    request: web.Request,
    ticket: Ticket,
    generation: GenerationRequest,
    renderer: EventRenderer,
    *,
    service: GenerationService | None = None,
) -> web.StreamResponse:
    """Stream the generation on ``service`` (the default model's when None) as server-sent events rendered by
    ``renderer``.

    Headers go out at once; ``: ping`` comments keep the connection busy while the request waits. A stream the
    server ends itself (an engine failure, the end of the shutdown grace) ends with one ``data: {"error": ...}``
    event, then ``data: [DONE]`` on routes that use it, and a terminated body. A client that goes away cancels
    the generation (its slot is freed at once).
    """
    state = request.app[STATE]
    if service is None:
        service = state.require_service()
    record = _record_for(request)
    request[STREAMED] = True
    events = EventStream(request, state.settings.sse_ping_seconds, state.settings.send_timeout_seconds)
    try:
        async with events:
            try:
                for event in renderer.opening():
                    await events.send_json(event)
                async with contextlib.aclosing(service.stream(ticket, generation, record)) as deltas:
                    try:
                        async for delta in deltas:
                            for event in renderer.delta(delta):
                                await events.send_json(event)
                    except SendTimeoutError as exc:
                        _send_timed_out(request, record, exc)  # before the stream closes: counted as such
                        raise
                for event in renderer.closing(record):
                    await events.send_json(event)
                if renderer.done_marker:
                    await events.send_done()
            except APIError as exc:
                await _end_with_error(events, renderer, exc)
            except asyncio.CancelledError:
                if not ticket.ended_by_server:
                    raise
                _ended_by_server(request)
                await _end_with_error(events, renderer, shutting_down())
            except ConnectionError:
                raise
            except Exception as exc:  # headers are out: the error can only be an event now
                logger.exception("internal error while streaming %s", escape_for_log(request.path))
                error = server_error(f"internal server error: {type(exc).__name__}: {exc}")
                await _end_with_error(events, renderer, error)
    except SendTimeoutError as exc:
        _send_timed_out(request, record, exc)
    except ConnectionError:
        if record.outcome in ("queued", "running"):
            record.outcome = "cancelled"
    finally:
        ticket.release()
    return events.response


def shutting_down() -> APIError:
    """The error of a request the shutdown ended before it finished."""
    return unavailable(
        "the server is shutting down and ended this request before it finished; retry it", code="shutting_down"
    )


async def _end_with_error(events: EventStream, renderer: EventRenderer, error: APIError) -> None:
    """A stream the server ends itself: the error event, then the end marker where the route has one."""
    await events.send_error(error)
    if renderer.done_marker:
        await events.send_done()


def _ended_by_server(request: web.Request) -> None:
    """The shutdown cancelled this request's task: take the cancellation back to answer, and say why."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    request[ENDED_BY_SERVER] = SHUTTING_DOWN


def _send_timed_out(request: web.Request, record: GenerationRecord, exc: SendTimeoutError) -> None:
    """The client stopped reading: the stream is ended, its slot freed; say so once, in the log and the metrics."""
    if ENDED_BY_SERVER in request:
        return
    if record.outcome in ("queued", "running"):
        record.outcome = SEND_TIMEOUT
    request[ENDED_BY_SERVER] = f"send timeout ({exc})"
    logger.warning(
        "ended a stream to %s on %s: %s (--send-timeout); its slot is free",
        request.remote,
        escape_for_log(request.path),
        exc,
    )


def _record_for(request: web.Request) -> GenerationRecord:
    record = GenerationRecord()
    request[RECORD] = record
    return record
