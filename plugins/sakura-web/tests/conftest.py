"""Fixtures for sakura-web's tests: the server on a tiny GGUF with the real llama.cpp engine, the workbench
plugin registered in-process, and a plugin that records every prompt the engine gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sakura_web.plugin
from aiohttp.test_utils import TestServer
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.tiny_model import write_tiny_gguf
from sakura_web.options import WebOptions

from sakura_core import hookimpl
from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.server.settings import ServerSettings
from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo

#: The engine the tests serve: two slots, a small context, one thread (CI has two cores).
ENGINE_OPTIONS = {"n_ctx": 1024, "n_parallel": 2, "n_batch": 64, "threads": 1}


@dataclass
class PromptRecorder:
    """A plugin recording the prompt of every generation (before_generate) and every finished one."""

    prompts: list[str] = field(default_factory=list)
    finished: list[GenerationResult] = field(default_factory=list)

    @hookimpl
    def before_generate(self, request: GenerationRequest, model: ModelInfo) -> None:
        """The prompt exactly as the engine gets it."""
        self.prompts.append(request.prompt)

    @hookimpl
    def after_generate(self, request: GenerationRequest, result: GenerationResult, model: ModelInfo) -> None:
        """Generations that ran to their end."""
        if result.finish_reason in ("stop", "length"):
            self.finished.append(result)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 GGUF named like a Sakura v1.0 model."""
    return write_tiny_gguf(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
async def llama_engine(tiny_gguf: Path) -> AsyncIterator[LlamaCppEngine]:
    """The real llama.cpp engine on the tiny model, shared by the in-process servers."""
    engine = LlamaCppEngine(LlamaCppOptions(**ENGINE_OPTIONS))
    await engine.load(str(tiny_gguf))
    yield engine
    await engine.close()


@dataclass
class WebServer:
    """The core's application with the workbench plugin, on a loopback port, and a client session for it."""

    server: TestServer
    session: aiohttp.ClientSession
    recorder: PromptRecorder
    jobs_dir: Path
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request with the server's credentials (an ``async with`` context)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.session.request(method, self.url + path, headers=headers, **kwargs)

    async def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON body) of a request."""
        async with self.request(method, path, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    @staticmethod
    async def events(response: aiohttp.ClientResponse) -> list[Any]:
        """Every ``data:`` event of a server-sent event stream, parsed."""
        events = []
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line.removeprefix("data: ")))
        return events


StartServer = Callable[..., Awaitable[WebServer]]


@pytest.fixture
async def web_server(llama_engine: LlamaCppEngine, tmp_path: Path) -> AsyncIterator[StartServer]:
    """``await web_server(options=None, settings=None)``: serve the engine with the workbench (jobs under the
    test's folder unless ``options`` say otherwise); stopped after the test."""
    started: list[WebServer] = []

    async def start(options: WebOptions | None = None, settings: ServerSettings | None = None) -> WebServer:
        recorder = PromptRecorder()
        options = options or WebOptions(jobs_dir=tmp_path / "jobs")
        registry = PluginRegistry.create(
            entry_points=False, plugins=[("web", sakura_web.plugin), ("recorder", recorder)]
        )
        assert llama_engine.model_info is not None
        app = create_app(
            llama_engine,
            registry,
            llama_engine.model_info,
            settings or ServerSettings(),
            run_options={WebOptions: options},
        )
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        assert options.jobs_dir is not None
        web = WebServer(server, aiohttp.ClientSession(), recorder, options.jobs_dir)
        started.append(web)
        return web

    yield start
    for web in started:
        await web.session.close()
        await web.server.close()
