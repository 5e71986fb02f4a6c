"""The ``register_server_extensions`` hook: a plugin's routes, static files, lifespans and home page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel

from sakura_core import hookimpl
from sakura_core.engine import Engine
from sakura_core.server.banner import banner
from sakura_core.server.extension import ExtensionConflictError, ServerExtension, StaticFiles
from sakura_core.server.http.auth import resolve_auth
from sakura_core.server.keys import STATE
from sakura_core.server.routes.spec import RouteSpec
from sakura_core.server.settings import ServerSettings

from .conftest import StartServer


class Served(BaseModel):
    model: str
    greeting: str


class GreetingOptions(BaseModel):
    greeting: str = "hello"


def _plugin(static_dir: Path, events: list[str], *, path: str = "/my-plugin/served") -> Any:
    async def served(request: web.Request) -> web.Response:
        state = request.app[STATE]
        options = state.run_options.get(GreetingOptions) or GreetingOptions()
        answer = Served(model=state.require_service().model_info.id, greeting=options.greeting)  # type: ignore[attr-defined]
        return web.json_response(answer.model_dump())

    async def open_page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>page</title>", content_type="text/html")

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    class Plugin:
        @hookimpl
        def register_server_extensions(
            self, register: Callable[[ServerExtension], None], run_options: dict[type[BaseModel], BaseModel]
        ) -> None:
            register(
                ServerExtension(
                    name="my-plugin",
                    routes=[
                        RouteSpec("GET", path, served, "The served model.", response=Served, tags=("my-plugin",)),
                        RouteSpec("GET", "/my-plugin/page/{name}", open_page, "A page.", public=True),
                    ],
                    static=[
                        StaticFiles("/my-plugin/static/", static_dir, {"Content-Security-Policy": "default-src 'self'"})
                    ],
                    lifespans=[lifespan],
                    home="/my-plugin/page/index",
                )
            )

    return Plugin()


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "app.js").write_text("console.log('hi');\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside the folder\n", encoding="utf-8")
    return folder


async def test_routes_static_files_and_lifespans_join_the_server(start_server: StartServer, static_dir: Path) -> None:
    events: list[str] = []
    server = await start_server(plugins=(("my-plugin", _plugin(static_dir, events)),))
    assert events == ["started"]
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/my-plugin/served") as response:
            assert response.status == 200
            assert await response.json() == {
                "model": server.app[STATE].require_service().model_info.id,
                "greeting": "hello",
            }
        async with session.get(server.url + "/my-plugin/static/app.js") as response:
            assert response.status == 200
            assert "console.log" in await response.text()
            assert response.headers["Content-Security-Policy"] == "default-src 'self'"
            assert response.headers["Server"] == "sakura"
        async with session.get(server.url + "/my-plugin/static/../secret.txt") as response:
            assert response.status in (403, 404)
        async with session.get(server.url + "/my-plugin/static/%2e%2e/secret.txt") as response:
            assert response.status in (403, 404)
        async with session.get(server.url + "/openapi.json") as response:
            paths = (await response.json())["paths"]
    assert "/my-plugin/served" in paths
    assert "Served" in str(paths["/my-plugin/served"])


async def test_credentials_cover_plugin_routes_unless_public(start_server: StartServer, static_dir: Path) -> None:
    events: list[str] = []
    settings = ServerSettings(api_key="sekrit")
    server = await start_server(settings=settings, plugins=(("my-plugin", _plugin(static_dir, events)),))
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/my-plugin/served") as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        headers = {"Authorization": "Bearer sekrit"}
        async with session.get(server.url + "/my-plugin/served", headers=headers) as response:
            assert response.status == 200
        async with session.get(server.url + "/my-plugin/page/index") as response:
            assert response.status == 200
        async with session.get(server.url + "/my-plugin/static/app.js") as response:
            assert response.status == 200
        async with session.post(server.url + "/my-plugin/static/app.js") as response:
            assert response.status == 401  # only GET and HEAD of static files are public


async def test_run_options_reach_the_plugin(start_server: StartServer, static_dir: Path) -> None:
    from sakura_core.server import create_app
    from sakura_core.server.keys import STATE as KEY

    server = await start_server(plugins=(("my-plugin", _plugin(static_dir, [])),))
    engine = server.engine
    app = create_app(
        engine,
        server.registry,
        server.app[KEY].require_service().model_info,
        run_options={GreetingOptions: GreetingOptions(greeting="你好")},
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/my-plugin/served") as response,
        ):
            assert (await response.json())["greeting"] == "你好"
    finally:
        await runner.cleanup()


async def test_lifespan_ends_with_the_server(start_server: StartServer, static_dir: Path) -> None:
    events: list[str] = []
    server = await start_server(plugins=(("my-plugin", _plugin(static_dir, events)),))
    assert events == ["started"]
    await server.app.cleanup()
    assert events == ["started", "stopped"]


async def test_a_route_the_server_answers_is_refused_naming_the_plugin(
    start_server: StartServer, static_dir: Path
) -> None:
    with pytest.raises(ExtensionConflictError, match=r"my-plugin.*GET /health"):
        await start_server(plugins=(("my-plugin", _plugin(static_dir, [], path="/health")),))


def test_the_banner_prints_the_home_page(recording_engine_class: type[Engine]) -> None:
    from sakura_core.types import ModelInfo

    info = ModelInfo(id="m", name="m", path="m.gguf", context_length=512)
    text = banner(recording_engine_class(), info, "127.0.0.1", 8080, resolve_auth(ServerSettings()), pages=["/"])
    assert "open in a browser: http://127.0.0.1:8080/" in text
