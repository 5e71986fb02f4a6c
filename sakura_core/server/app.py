"""The aiohttp application: middlewares, the route table, the OpenAPI route."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web
from pydantic import BaseModel

from sakura_core import __version__
from sakura_core.engine import Engine
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.server.extension import check_no_conflicts
from sakura_core.server.generation.health import engine_health_watch
from sakura_core.server.generation.idle import idle_models_watch
from sakura_core.server.generation.state import ServerState
from sakura_core.server.http.expect import expect_handler
from sakura_core.server.http.middleware import MIDDLEWARES, add_cors_headers
from sakura_core.server.keys import HOMES, OPENAPI, PUBLIC_PATHS, PUBLIC_ROUTES, STATE, STATIC_HEADERS
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
    """The application over ``state`` (loading or ready), with what plugins add (``register_server_extensions``).

    Raises ExtensionConflictError when a plugin's route or static prefix is already taken.
    """
    app = web.Application(middlewares=MIDDLEWARES)  # bodies are read by httpio, with their own limits
    core = route_table(state.settings.several_models)
    extensions = state.registry.server_extensions(state.run_options)
    check_no_conflicts(core, extensions)
    plugin_routes = [spec for extension in extensions for spec in extension.routes]
    routes = [*core, *plugin_routes]
    app[STATE] = state
    app[PUBLIC_PATHS] = frozenset(spec.path for spec in core if spec.public)
    app[PUBLIC_ROUTES] = frozenset(spec.path for spec in plugin_routes if spec.public)
    app[OPENAPI] = build_openapi(routes, version=__version__)
    for spec in routes:
        app.router.add_route(spec.method, spec.path, spec.handler, expect_handler=expect_handler)
        if spec.method == "GET":  # uptime monitors ask with HEAD: the same answer without its body
            app.router.add_route("HEAD", spec.path, spec.handler, expect_handler=expect_handler)
    static = [folder for extension in extensions for folder in extension.static]
    for folder in static:
        app.router.add_static(folder.prefix, folder.directory)
    app[STATIC_HEADERS] = tuple((folder.prefix.rstrip("/") + "/", tuple(folder.headers.items())) for folder in static)
    app[HOMES] = tuple(extension.home for extension in extensions if extension.home)
    app.on_response_prepare.append(add_cors_headers)
    app.cleanup_ctx.append(engine_health_watch)
    app.cleanup_ctx.append(idle_models_watch)
    for extension in extensions:
        app.cleanup_ctx.extend(extension.lifespans)
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
    run_options: Mapping[type[BaseModel], BaseModel] | None = None,
) -> web.Application:
    """The application for an engine that already loaded ``model_info`` (for tests, benchmarks, embedding).

    ``settings.alias`` is not applied here: pass the ModelInfo with the id to serve. Serve it as ``serve`` does:
    ``web.AppRunner(app, **sakura_core.server.runner.RUNNER_OPTIONS)`` (a client that disconnects cancels its
    generation) and a ``sakura_core.server.http.connections.GuardedSite`` (timeouts, connection cap, JSON protocol
    errors). ``others`` are loaded models served beside it, each with its aliases (``model_info`` is the default).
    ``run_options`` are plugins' ``sakura run`` options, for their server extensions (absent: their defaults).
    """
    state = ServerState(
        settings if settings is not None else ServerSettings(), engine, registry, run_options=run_options
    )
    state.set_ready(LoadedModel(engine, registry, model_info), others)
    return build_app(state)
