"""Models loaded on demand: LRU unloading past ``models_max``, the idle TTL, a failed load, waiting for a load."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sakura_echo.scripted import ReferenceOptions

from sakura_core.engine import ModelLoadError
from sakura_core.loaded_model import LoadedModel
from sakura_core.server import create_app
from sakura_core.server.generation.state import ServerState
from sakura_core.server.http.connections import GuardedSite
from sakura_core.server.keys import STATE
from sakura_core.server.runner import RUNNER_OPTIONS
from sakura_core.server.settings import ServerSettings

from .conftest import RecordingEngine, make_registry

DEFAULT = "models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf"
OTHERS = {
    "b": "models/sakura-14b-qwen2.5-v1.0-q6k.gguf",
    "c": "models/GalTransl-7B-v2.6-IQ4_XS.gguf",
}


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds, at most ``within`` seconds (the caller asserts it afterwards)."""
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.02)):
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


class Server:
    """A server over a loaded default model and on-demand ones (aliases ``b`` and ``c``)."""

    def __init__(self, url: str, state: ServerState, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.state = state
        self.session = session
        #: Every engine a loader made, by alias, in order.
        self.engines: dict[str, list[RecordingEngine]] = {name: [] for name in OTHERS}
        self.gates: dict[str, asyncio.Event] = {}
        self.broken: set[str] = set()

    def loader(self, alias: str, source: str) -> Callable[[], Awaitable[LoadedModel]]:
        async def load() -> LoadedModel:
            if alias in self.gates:
                await self.gates[alias].wait()
            if alias in self.broken:
                raise ModelLoadError(f"{source}: not a GGUF file")
            engine = RecordingEngine(ReferenceOptions())
            self.engines[alias].append(engine)
            return LoadedModel(engine, make_registry(), await engine.load(source))

        return load

    async def chat(self, model: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        body = {"model": model, "messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 8, **extra}
        async with self.session.post(self.url + "/v1/chat/completions", json=body) as response:
            return response.status, await response.json()

    async def statuses(self) -> dict[str, str]:
        async with self.session.get(self.url + "/v1/models") as response:
            cards = (await response.json())["data"]
        return {card["id"]: card["status"]["value"] for card in cards}


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    runners: list[tuple[web.AppRunner, aiohttp.ClientSession]] = []

    async def make(**settings: Any) -> Server:
        engine = RecordingEngine(ReferenceOptions())
        app = create_app(engine, make_registry(), await engine.load(DEFAULT), ServerSettings(**settings))
        runner = web.AppRunner(app, **RUNNER_OPTIONS)
        await runner.setup()
        site = GuardedSite(runner, ServerSettings(), host="127.0.0.1", port=0)
        await site.start()
        session = aiohttp.ClientSession()
        runners.append((runner, session))
        server = Server(f"http://127.0.0.1:{site.port}", app[STATE], session)
        for alias, source in OTHERS.items():
            server.state.register(
                source.rsplit("/", 1)[1].removesuffix(".gguf"), source, [alias], server.loader(alias, source)
            )
        return server

    yield make
    for runner, session in runners:
        await session.close()
        await runner.cleanup()


async def test_past_models_max_the_least_recently_used_idle_model_is_unloaded(start: Any) -> None:
    server = await start(models_max=2)
    assert (await server.chat("b"))[1]["model"] == "sakura-14b-qwen2.5-v1.0-q6k"
    assert (await server.statuses())["sakura-14b-qwen2.5-v1.0-q6k"] == "loaded"
    assert (await server.chat("c"))[1]["model"] == "GalTransl-7B-v2.6-IQ4_XS"
    assert server.engines["b"][0].closed  # b was the least recently used idle one (the default is never unloaded)
    assert await server.statuses() == {
        "sakura-7b-qwen2.5-v1.0-iq4xs": "loaded",
        "sakura-14b-qwen2.5-v1.0-q6k": "unloaded",
        "GalTransl-7B-v2.6-IQ4_XS": "loaded",
    }
    assert (await server.chat("b"))[0] == 200  # loads again, unloading c
    assert len(server.engines["b"]) == 2
    assert server.engines["c"][0].closed


async def test_a_model_that_fails_to_load_gives_its_requests_a_503_and_the_others_serve(start: Any) -> None:
    server = await start()
    server.broken.add("b")
    for _ in range(2):
        status, body = await server.chat("b")
        assert status == 503
        assert body["error"]["code"] == "model_load_failed"
        assert "not a GGUF file" in body["error"]["message"]
    assert (await server.chat(""))[0] == 200
    assert (await server.chat("c"))[0] == 200
    assert (await server.statuses())["sakura-14b-qwen2.5-v1.0-q6k"] == "failed"


async def test_a_request_for_a_model_being_loaded_waits_and_succeeds(start: Any) -> None:
    server = await start()
    server.gates["b"] = asyncio.Event()
    waiting = [asyncio.ensure_future(server.chat("b")) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert (await server.statuses())["sakura-14b-qwen2.5-v1.0-q6k"] == "loading"
    assert (await server.chat(""))[0] == 200  # others keep flowing
    assert not any(task.done() for task in waiting)
    server.gates["b"].set()
    answers = await asyncio.gather(*waiting)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len(server.engines["b"]) == 1  # one load for every waiter


async def test_a_disconnect_while_waiting_for_a_load_frees_everything(start: Any) -> None:
    server = await start()
    server.gates["b"] = asyncio.Event()
    request = asyncio.ensure_future(server.chat("b"))
    await asyncio.sleep(0.1)
    entry = server.state.models.lookup("b")
    assert entry is not None and entry.users == 1
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    await eventually(lambda: entry.users == 0)
    assert entry.users == 0
    server.gates["b"].set()
    await eventually(lambda: entry.model is not None)
    assert entry.scheduler is not None
    assert (entry.scheduler.active, entry.scheduler.waiting) == (0, 0)
    assert server.engines["b"][0].calls == []  # the request that went away never generated


async def test_an_idle_model_is_unloaded_after_the_ttl_and_loads_again(start: Any) -> None:
    server = await start(models_ttl_seconds=0.2)
    assert (await server.chat("b"))[0] == 200
    await eventually(lambda: server.engines["b"][0].closed)
    assert server.engines["b"][0].closed
    statuses = await server.statuses()
    assert statuses["sakura-14b-qwen2.5-v1.0-q6k"] == "unloaded"
    assert statuses["sakura-7b-qwen2.5-v1.0-iq4xs"] == "loaded"  # never the default
    assert (await server.chat("b"))[0] == 200
    assert len(server.engines["b"]) == 2


async def test_load_and_unload_routes_need_auth_and_work(start: Any) -> None:
    server = await start(several_models=True, api_key="k")
    headers = {"Authorization": "Bearer k"}
    async with server.session.post(server.url + "/models/load", json={"model": "b"}) as response:
        assert response.status == 401
    async with server.session.post(server.url + "/models/load", json={"model": "b"}, headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"success": True})
    assert server.engines["b"] and not server.engines["b"][0].closed
    async with server.session.get(server.url + "/slots?model=b") as response:
        assert response.status == 200
        assert len(await response.json()) == 4
    async with server.session.get(server.url + "/health?model=b") as response:
        assert (response.status, (await response.json())["status"]) == (200, "ok")
    async with server.session.get(server.url + "/health?model=c") as response:
        assert (response.status, (await response.json())["status"]) == (503, "loading model")
    async with server.session.post(server.url + "/models/unload", json={"model": "b"}, headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"success": True})
    assert server.engines["b"][0].closed
    async with server.session.get(server.url + "/slots?model=b") as response:
        assert (response.status, (await response.json())["error"]["code"]) == (503, "model_not_loaded")
    for path, body, status in [
        ("/models/unload", {"model": "sakura-7b-qwen2.5-v1.0-iq4xs"}, 400),  # the default stays
        ("/models/load", {"model": "nope"}, 404),
        ("/models/load", {}, 400),
    ]:
        async with server.session.post(server.url + path, json=body, headers=headers) as response:
            assert response.status == status, (path, body)
            assert "error" in await response.json()


async def test_one_model_has_no_load_routes(start: Any) -> None:
    server = await start()
    async with server.session.post(server.url + "/models/load", json={"model": "b"}) as response:
        assert response.status in (404, 405)


async def test_completion_and_metrics_follow_the_named_model(start: Any) -> None:
    server = await start(several_models=True)
    body = {"model": "b", "prompt": "こんにちは", "n_predict": 4}
    async with server.session.post(server.url + "/completion", json=body) as response:
        assert (await response.json())["model"] == "sakura-14b-qwen2.5-v1.0-q6k"
    async with server.session.post(server.url + "/completion", json={**body, "model": 7}) as response:
        assert (await response.json())["model"] == "sakura-7b-qwen2.5-v1.0-iq4xs"  # not a name: the default
    async with server.session.get(server.url + "/metrics?model=b") as response:
        text = await response.text()
    assert "llamacpp:requests_processing 0.0" in text
    async with server.session.get(server.url + "/metrics?model=c") as response:  # not loaded: no gauges
        assert response.status == 200
        assert "llamacpp:requests_processing" not in await response.text()


async def test_shutdown_during_a_load_answers_the_waiters_and_closes_everything(start: Any) -> None:
    server = await start()
    server.gates["b"] = asyncio.Event()
    waiting = asyncio.ensure_future(server.chat("b"))
    await asyncio.sleep(0.1)
    closing = asyncio.ensure_future(server.state.models.close())
    status, body = await waiting
    await closing
    assert (status, body["error"]["code"]) == (503, "shutting_down")
    assert all(entry.model is None and entry.loading is None for entry in server.state.models)


async def test_a_failed_model_is_tried_again_after_the_cooldown(start: Any) -> None:
    server = await start()
    server.broken.add("b")
    status, _ = await server.chat("b")
    for messages in ([], [{"role": "narrator", "content": "a"}]):
        body = {"model": "b", "messages": messages}
        async with server.session.post(server.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 400  # bad input is a 400 even for a model that cannot load
            assert (await response.json())["error"]["param"] == "messages"
    entry = server.state.models.lookup("b")
    assert entry is not None and status == 503
    async with server.session.post(
        server.url + "/v1/chat/completions", json={"model": "b", "messages": [{"role": "user", "content": "a"}]}
    ) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "60"
    server.broken.clear()
    entry.failed_at -= 61  # the cool-down is over
    assert (await server.chat("b"))[0] == 200
    assert (await server.statuses())["sakura-14b-qwen2.5-v1.0-q6k"] == "loaded"
