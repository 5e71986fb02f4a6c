"""Running the server: 503 while loading, alias, self-check, banner, graceful shutdown, load errors, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import aiohttp
import pytest
from sakura_echo.scripted import ReferenceOptions

from sakura_core.engine import ModelLoadError
from sakura_core.self_check import SELF_CHECK_INPUT
from sakura_core.server.runner import run_server
from sakura_core.server.settings import ServerSettings
from sakura_core.testing.ports import free_port

MODEL = "models/sakura-14b-qwen2beta-v0.9.2-iq4xs.gguf"
CHAT = {"messages": [{"role": "user", "content": "こんにちは"}]}


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def gated_engine_class(recording_engine_class):
    """An engine class whose ``load`` waits for ``gate`` (or raises ``load_error``)."""

    class GatedEngine(recording_engine_class):
        def __init__(self, options=None) -> None:
            super().__init__(options)
            self.gate = asyncio.Event()
            self.load_error: Exception | None = None

        async def load(self, model, model_version=None):
            await self.gate.wait()
            if self.load_error is not None:
                raise self.load_error
            return await super().load(model, model_version)

    return GatedEngine


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def wait_until_listening(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(url + "/health"):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the server never listened")


async def wait_until_ready(session: aiohttp.ClientSession, url: str) -> None:
    """Until the server listens and its model is loaded (/health 200)."""
    await wait_until_listening(session, url)
    for _ in range(200):
        if (await get_json(session, url + "/health"))[0] == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server never became ready")


async def wait_until_active(engine, count: int) -> None:
    """Until ``count`` generations run in the engine."""
    for _ in range(200):
        if engine.active == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{engine.active} generations run, not {count}")


async def test_health_is_503_while_loading_then_serves_with_alias_and_self_check(
    gated_engine_class, caplog, registry_factory
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    settings = ServerSettings(port=port, alias="sakura-v0.9-alias", shutdown_grace_seconds=5)
    engine = gated_engine_class(ReferenceOptions(token_delay=0.01, answer_length=20))
    registry = registry_factory()
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(settings, engine, registry, MODEL, None, stop))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        await wait_until_listening(session, url)
        assert await get_json(session, url + "/health") == (503, {"status": "loading model"})
        async with session.post(url + "/v1/chat/completions", json=CHAT) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await response.json())["error"]["code"] == "model_loading"
        engine.gate.set()
        for _ in range(200):
            status, body = await get_json(session, url + "/health")
            if status == 200:
                break
            await asyncio.sleep(0.02)
        assert body == {"status": "ok", "slots_idle": 4, "slots_processing": 0}
        _, models = await get_json(session, url + "/v1/models")
        assert models["data"][0]["id"] == "sakura-v0.9-alias"
        # the self-check ran first: greedy, 20 tokens, in the model's (v0.9) format
        prompt, params = engine.calls[0]
        assert SELF_CHECK_INPUT in prompt and params.max_tokens == 20 and params.greedy
        assert "self-check" in caplog.text
        assert f"paste into your translator: http://127.0.0.1:{port}" in caplog.text
        assert "sakura-v0.9-alias" in caplog.text and "auth:    none" in caplog.text
        # a request in flight when the stop comes finishes within the grace period
        async with session.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            await response.content.readuntil(b"\n\n")
            stop.set()
            rest = (await response.read()).decode()
        assert rest.endswith("data: [DONE]\n\n")
        await asyncio.wait_for(task, 5)
    assert engine.closed
    assert port_is_closed(port)


async def test_work_left_after_the_grace_period_is_cancelled(recording_engine_class, registry_factory) -> None:
    port = free_port()
    settings = ServerSettings(port=port, self_check=False, shutdown_grace_seconds=0.3)
    engine = recording_engine_class(ReferenceOptions(parallel=1, token_delay=0.01, answer_length=100_000))
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(settings, engine, registry_factory(), MODEL, None, stop))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        await wait_until_ready(session, url)
        running = asyncio.create_task(session.post(url + "/v1/chat/completions", json=CHAT))
        queued = asyncio.create_task(session.post(url + "/v1/chat/completions", json=CHAT))
        await wait_until_active(engine, 1)
        started = time.perf_counter()
        stop.set()
        await asyncio.wait_for(task, 5)
        assert time.perf_counter() - started < 0.3 + 2.5
        for request in (running, queued):
            with contextlib.suppress(aiohttp.ClientError):
                (await request).close()
    assert engine.active == 0
    assert engine.closed
    assert port_is_closed(port)


async def test_model_load_error_propagates_after_closing_the_socket(gated_engine_class, registry_factory) -> None:
    port = free_port()
    engine = gated_engine_class()
    engine.load_error = ModelLoadError("model file not found: x.gguf; pass --model with a GGUF file")
    engine.gate.set()
    with pytest.raises(ModelLoadError, match="model file not found"):
        await run_server(ServerSettings(port=port), engine, registry_factory(), "x.gguf", None, asyncio.Event())
    assert port_is_closed(port)
    with socket.socket() as again:  # the address can be bound again at once
        again.bind(("127.0.0.1", port))


async def test_stop_while_loading(gated_engine_class, registry_factory) -> None:
    port = free_port()
    engine = gated_engine_class()
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(ServerSettings(port=port), engine, registry_factory(), MODEL, None, stop))
    async with aiohttp.ClientSession() as session:
        await wait_until_listening(session, f"http://127.0.0.1:{port}")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert engine.closed and port_is_closed(port)


async def test_busy_port_raises_address_in_use(recording_engine_class, registry_factory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engine = recording_engine_class()
        with pytest.raises(OSError):
            await run_server(ServerSettings(port=port), engine, registry_factory(), MODEL, None, asyncio.Event())
    assert not engine.closed  # never loaded, so never closed


SERVE_SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, sys
    from sakura_core import hookimpl
    from sakura_core.plugins import PluginRegistry
    from sakura_core.server import serve
    from sakura_core.server.settings import ServerSettings
    from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

    class Closing(ReferenceEngine):
        async def close(self):
            print("engine close called", flush=True)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    settings = ServerSettings(port=int(sys.argv[1]), shutdown_grace_seconds=5)
    engine = Closing(ReferenceOptions(token_delay=0.005, answer_length=200))
    asyncio.run(serve(settings, engine, PluginRegistry.create(entry_points=False), sys.argv[2], None))
    print("serve returned", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_in_a_process_stops_gracefully_on_a_signal(signum: int) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_SCRIPT,
        str(port),
        MODEL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_listening(session, url)
            for _ in range(300):
                if (await get_json(session, url + "/health"))[0] == 200:
                    break
                await asyncio.sleep(0.02)
            async with session.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
                await response.content.readuntil(b"\n\n")
                process.send_signal(signum)
                rest = (await response.read()).decode()
            assert rest.endswith("data: [DONE]\n\n")  # the stream in flight finished within the grace
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode()
    assert process.returncode == 0, text
    assert "paste into your translator: http://127.0.0.1:" in text
    assert "shutting down" in text
    assert "engine close called" in text and "serve returned" in text
    assert text.index("engine close called") < text.index("serve returned")


async def test_requests_still_running_when_the_grace_ends_are_ended_properly(
    recording_engine_class, registry_factory, sse_parser, caplog
) -> None:
    """Streams get a shutting_down error event, then [DONE] where the route uses it, and a terminated body;
    a non-streaming request gets a 503; the log says the server ended them."""
    caplog.set_level(logging.INFO)
    port = free_port()
    settings = ServerSettings(port=port, self_check=False, shutdown_grace_seconds=0.3)
    engine = recording_engine_class(ReferenceOptions(parallel=3, token_delay=0.01, answer_length=100_000))
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(settings, engine, registry_factory(), MODEL, None, stop))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        await wait_until_ready(session, url)

        async def stream(path: str, body: dict) -> str:
            async with session.post(url + path, json={**body, "stream": True}) as response:
                assert response.status == 200
                await response.content.readuntil(b"\n\n")
                return (await response.read()).decode()  # raises if the body is not terminated

        async def plain() -> tuple[int, dict]:
            async with session.post(url + "/v1/chat/completions", json=CHAT) as response:
                return response.status, await response.json()

        requests = asyncio.gather(
            stream("/v1/chat/completions", CHAT), stream("/api/v1/stream/generate", {"prompt": "x"}), plain()
        )
        await wait_until_active(engine, 3)
        stop.set()
        chat, legacy, (status, body) = await asyncio.wait_for(requests, 10)
        await asyncio.wait_for(task, 10)
    chat_events = sse_parser(chat)
    assert chat_events.data[-1] == "[DONE]"
    assert chat_events.json()[-1]["error"]["code"] == "shutting_down"
    legacy_events = sse_parser(legacy)
    assert "[DONE]" not in legacy_events.data
    assert legacy_events.json()[-1]["error"]["code"] == "shutting_down"
    assert status == 503 and body["error"]["code"] == "shutting_down"
    access = [
        r.getMessage() for r in caplog.records if r.name == "sakura_core.server.access" and "POST" in r.getMessage()
    ]
    assert len(access) == 3, access
    assert all("ended by the server: shutting down" in line for line in access), access
    assert not any(" 499 " in line for line in access), access
    assert sum(" 200 stream " in line for line in access) == 2 and sum(" 503 " in line for line in access) == 1
    assert engine.active == 0 and engine.closed


async def test_a_request_cut_by_the_shutdown_is_not_logged_as_closed_by_its_client(
    recording_engine_class, registry_factory, caplog
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    settings = ServerSettings(port=port, self_check=False, shutdown_grace_seconds=0.1)
    engine = recording_engine_class(ReferenceOptions())
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(settings, engine, registry_factory(), MODEL, None, stop))
    async with aiohttp.ClientSession() as session:
        await wait_until_ready(session, url := f"http://127.0.0.1:{port}")
        assert url
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt": ')
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler waits for the rest of the body
    stop.set()
    await asyncio.wait_for(task, 10)
    writer.close()
    access = [
        r.getMessage() for r in caplog.records if r.name == "sakura_core.server.access" and "POST" in r.getMessage()
    ]
    assert len(access) == 1, access
    assert " 499 " not in access[0] and "ended by the server: shutting down" in access[0], access
