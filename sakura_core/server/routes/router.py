"""Loading and unloading served models by hand, as llama-server's router mode names the routes (auth required)."""

from __future__ import annotations

from aiohttp import web

from sakura_core.server.generation.models import ServedModel
from sakura_core.server.http.errors import APIError, invalid_request
from sakura_core.server.http.httpio import json_response, parse, read_body_as
from sakura_core.server.keys import STATE
from sakura_core.server.routes.schemas.router import ModelActionRequest, ModelActionResponse
from sakura_core.server.routes.spec import RouteSpec


async def _named(request: web.Request) -> ServedModel:
    state = request.app[STATE]
    state.require_service()
    body = await read_body_as(request, state.body_limits(), lambda raw: parse(ModelActionRequest, raw))
    entry = state.models.lookup(body.model)
    if entry is None:
        raise APIError(404, f"no served model is named {body.model!r}", param="model", code="model_not_found")
    return entry


async def load_model(request: web.Request) -> web.Response:
    """Load the named model now (waiting, bounded, for the load); 503 when it cannot be loaded."""
    state = request.app[STATE]
    entry = await _named(request)
    if entry.failure is not None:
        entry.failure = None  # asked by hand: try again
    async with state.models.use(entry):
        pass
    return json_response(ModelActionResponse())


async def unload_model(request: web.Request) -> web.Response:
    """Unload the named model (its memory returned); never the default one, nor one serving requests."""
    state = request.app[STATE]
    entry = await _named(request)
    if entry is state.models.default or entry.loader is None:
        raise invalid_request(f"the model {entry.id} is served from start to end and cannot be unloaded", param="model")
    if entry.users:
        raise APIError(409, f"the model {entry.id} is serving requests; retry when it is idle", code="model_busy")
    await state.models.unload(entry)
    return json_response(ModelActionResponse())


ROUTES = [
    RouteSpec(
        "POST",
        "/models/load",
        load_model,
        "Load a served model now (it also loads on the first request naming it).",
        request=ModelActionRequest,
        response=ModelActionResponse,
        errors=(400, 401, 404, 408, 413, 415, 503),
        tags=("router",),
    ),
    RouteSpec(
        "POST",
        "/models/unload",
        unload_model,
        "Unload a served model other than the default; it loads again on its next request.",
        request=ModelActionRequest,
        response=ModelActionResponse,
        errors=(400, 401, 404, 408, 409, 413, 415, 503),
        tags=("router",),
    ),
]
