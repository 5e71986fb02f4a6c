"""The one handler behind every generation route: each route module says only what differs.

Every generation route goes the same way: the server's state, the body read and validated, the service of the
model its ``model`` names (the default one for none or an unknown name), the prompt prepared for the model
(rendered, counted, fitted to the context), a place admitted, then the generation run to its end (one JSON
answer) or streamed as events. A route supplies three functions: what it asks of the
model (``plan``), its stream events (``events``) and its JSON answer (``answer``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from sakura_core.prompts import MessagesError, validate_messages
from sakura_core.server.generation.scheduler import Ticket
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.errors import invalid_request
from sakura_core.server.http.httpio import json_response, parse, read_body_as
from sakura_core.server.keys import STATE
from sakura_core.server.routes.sampling import merge_sakura_extras
from sakura_core.server.routes.streaming import Completed, EventRenderer, run_as_events, run_to_end


@dataclass(frozen=True)
class Plan:
    """What one request asks of the model, read from its body."""

    prompt: str
    sampling: Mapping[str, Any]
    #: None: the default; ``UNTIL_CONTEXT_FULL``: as many as the context leaves.
    max_tokens: int | None
    stream: bool
    messages: Sequence[Mapping[str, Any]] | None = None
    #: The body field a prompt too long for the context is blamed on.
    prompt_param: str = "prompt"


@dataclass(frozen=True)
class Admitted:
    """An admitted generation, as a route's answer and events see it."""

    request_id: str
    created: int
    model_id: str
    ticket: Ticket = field(repr=False)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)


def generation_handler(
    body_model: type[Body],
    plan: Callable[[Body, GenerationService], Plan],
    events: Callable[[Body, Admitted], EventRenderer],
    answer: Callable[[Body, Admitted, Completed], BaseModel],
    *,
    doc: str,
    sakura_extras: bool = False,
) -> Handler:
    """A route handler: the shared path, with the route's ``plan``, ``events`` and ``answer``.

    ``doc`` is the handler's docstring (the OpenAPI document's description of the route). ``sakura_extras``:
    Sakura's extra sampling fields may also come nested or in the URL query (``merge_sakura_extras``), as the
    OpenAI-compatible routes accept them.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.require_service()  # 503 while loading, before the body is read
        query = request.query

        def validate(raw: dict[str, Any]) -> Body:
            return parse(body_model, merge_sakura_extras(raw, query) if sakura_extras else raw)

        body = await read_body_as(request, state.body_limits(), validate)
        _check_messages(body)  # bad input is a 400 even when the model it names cannot load
        name = getattr(body, "model", None)
        entry = state.served(name if isinstance(name, str) else None)
        async with state.models.use(entry) as service:  # loads the model first when needed
            wanted = plan(body, service)
            generation = await service.prepare(
                wanted.prompt,
                wanted.sampling,
                max_tokens=wanted.max_tokens,
                messages=wanted.messages,
                prompt_param=wanted.prompt_param,
                client=request.remote,
            )
            ticket = service.admit()
            admitted = Admitted(generation.request_id, int(time.time()), service.model_info.id, ticket)
            if wanted.stream:
                return await run_as_events(request, ticket, generation, events(body, admitted), service=service)
            done = await run_to_end(request, ticket, generation, service=service)
            return json_response(answer(body, admitted, done))

    handle.__doc__ = doc
    return handle


def _check_messages(body: BaseModel) -> None:
    """400 for chat ``messages`` no prompt format takes (empty, an unknown role), before the model is chosen."""
    messages = getattr(body, "messages", None)
    if messages is None:
        return
    try:
        validate_messages([message.as_dict() for message in messages])
    except MessagesError as exc:
        raise invalid_request(str(exc), param="messages") from None
