"""The Sakura API server (aiohttp): OpenAI-compatible, llama-server-compatible and original Sakura routes.

``serve`` is what ``sakura run`` calls; ``create_app`` builds the application for an engine that is already
loaded (tests, benchmarks, embedding). aiohttp is imported only when one of them is called, so importing
``sakura_core.server.settings`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from sakura_core.engine import Engine
    from sakura_core.plugins import PluginRegistry
    from sakura_core.server.settings import ServerSettings
    from sakura_core.types import ModelInfo

__all__ = ["create_app", "serve"]


async def serve(
    settings: ServerSettings,
    engine: Engine,
    registry: PluginRegistry,
    model: str,
    model_version: str | None,
) -> None:
    """Bind, load ``model`` with ``engine``, serve until SIGINT/SIGTERM, shut down gracefully, close the engine.

    See sakura_core.server.runner.serve; a ModelLoadError from loading propagates after the socket is closed.
    """
    from sakura_core.server.runner import serve as run

    await run(settings, engine, registry, model, model_version)


def create_app(
    engine: Engine,
    registry: PluginRegistry,
    model_info: ModelInfo,
    settings: ServerSettings | None = None,
) -> web.Application:
    """The aiohttp application for an engine that has loaded ``model_info`` (see sakura_core.server.app)."""
    from sakura_core.server.app import create_app as build

    return build(engine, registry, model_info, settings)
