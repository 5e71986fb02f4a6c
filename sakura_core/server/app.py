"""The aiohttp application: middlewares, the route table, the OpenAPI route."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from sakura_core import __version__
from sakura_core.engine import Engine
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.server.generation.health import engine_health_watch
from sakura_core.server.generation.idle import idle_models_watch
from sakura_core.server.generation.state import ServerState
from sakura_core.server.http.expect import expect_handler
from sakura_core.server.http.middleware import MIDDLEWARES, add_cors_headers
from sakura_core.server.keys import OPENAPI, PUBLIC_PATHS, STATE
from sakura_core.server.routes import legacy, llamacpp, openai, router
from sakura_core.server.routes.openapi import build_openapi
from sakura_core.server.routes.spec import RouteSpec
from sakura_core.server.settings import ServerSettings
from sakura_core.types import ModelInfo


async def openapi_document(request: web.Request) -> web.Response:
    """This server's OpenAPI 3.1 document, generated from the request and response models."""
    return web.json_response(request.app[OPENAPI])


OPENAPI_ROUTE = RouteSpec(
    "GET", "/openapi.json", openapi_document, "The OpenAPI document of this API.", public=True, tags=("meta",)
)


def route_table(several_models: bool = False) -> list[RouteSpec]:
    """Every route the server answers; the load and unload routes only when it serves several models."""
    extra = router.ROUTES if several_models else []
    return [*openai.ROUTES, *llamacpp.ROUTES, *legacy.ROUTES, *extra, OPENAPI_ROUTE]


def build_app(state: ServerState) -> web.Application:
    """The application over ``state`` (loading or ready)."""
    app = web.Application(middlewares=MIDDLEWARES)  # bodies are read by httpio, with their own limits
    routes = route_table(state.settings.several_models)
    app[STATE] = state
    app[PUBLIC_PATHS] = frozenset(spec.path for spec in routes if spec.public)
    app[OPENAPI] = build_openapi(routes, version=__version__)
    for spec in routes:
        app.router.add_route(spec.method, spec.path, spec.handler, expect_handler=expect_handler)
        if spec.method == "GET":  # uptime monitors ask with HEAD: the same answer without its body
            app.router.add_route("HEAD", spec.path, spec.handler, expect_handler=expect_handler)
    app.on_response_prepare.append(add_cors_headers)
    app.cleanup_ctx.append(engine_health_watch)
    app.cleanup_ctx.append(idle_models_watch)
    app.on_cleanup.append(_close_state)
    return app


async def _close_state(app: web.Application) -> None:
    app[STATE].close()


def create_app(
    engine: Engine,
    registry: PluginRegistry,
    model_info: ModelInfo,
    settings: ServerSettings | None = None,
    others: Sequence[tuple[LoadedModel, Sequence[str]]] = (),
) -> web.Application:
    """The application for an engine that already loaded ``model_info`` (for tests, benchmarks, embedding).

    ``settings.alias`` is not applied here: pass the ModelInfo with the id to serve. Serve it as ``serve`` does:
    ``web.AppRunner(app, **sakura_core.server.runner.RUNNER_OPTIONS)`` (a client that disconnects cancels its
    generation) and a ``sakura_core.server.http.connections.GuardedSite`` (timeouts, connection cap, JSON protocol
    errors). ``others`` are loaded models served beside it, each with its aliases (``model_info`` is the default).
    """
    state = ServerState(settings if settings is not None else ServerSettings(), engine, registry)
    state.set_ready(LoadedModel(engine, registry, model_info), others)
    return build_app(state)
