"""Ollama failing while sakura serves: the client gets a JSON error, and sakura keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.options import OllamaOptions
from sakura_ollama.testing.api_server import OllamaAPIServer

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.testing.ports import free_port

CHAT = {"messages": [{"role": "user", "content": "将下面的日文文本翻译成中文：雨の音で目が覚めた。"}], "max_tokens": 8}


@pytest.fixture
async def served(api_server: OllamaAPIServer, tiny_gguf: Path) -> AsyncIterator[tuple[OllamaAPIServer, str]]:
    """sakura's application over an ollama engine, in-process; yields the Ollama-API server and sakura's URL."""
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False, num_ctx=512))
    info = await engine.load(str(tiny_gguf))
    runner = web.AppRunner(create_app(engine, PluginRegistry.create(), info), handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield api_server, f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await engine.close()


async def test_an_ollama_error_is_a_json_error_and_serving_goes_on(served: tuple[OllamaAPIServer, str]) -> None:
    server, url = served
    async with httpx.AsyncClient(timeout=30) as http:
        ok = await http.post(f"{url}/v1/chat/completions", json=CHAT)
        assert ok.status_code == 200
        server.fail_after_chunks = 1
        failed = await http.post(f"{url}/v1/chat/completions", json=CHAT)
        assert failed.status_code in (500, 503)
        error = failed.json()["error"]
        assert "an error was encountered while running the model" in error["message"]
        assert error["type"] == "server_error"
        server.fail_after_chunks = None
        again = await http.post(f"{url}/v1/chat/completions", json=CHAT)
        assert again.status_code == 200 and again.json()["usage"]["completion_tokens"] == 8
        health = (await http.get(f"{url}/health")).json()
        assert health == {"status": "ok", "slots_idle": 4, "slots_processing": 0}


async def test_ollama_gone_is_a_json_error_naming_it(served: tuple[OllamaAPIServer, str]) -> None:
    server, url = served
    await server.stop()
    async with httpx.AsyncClient(timeout=30) as http:
        failed = await http.post(f"{url}/v1/chat/completions", json=CHAT)
        assert failed.status_code in (500, 503)
        assert f"cannot reach Ollama at {server.url}" in failed.json()["error"]["message"]
        assert (await http.get(f"{url}/health")).status_code == 200
