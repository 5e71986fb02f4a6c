"""Fixtures for the server tests: the real aiohttp server (the runner and listening socket ``sakura run`` uses)
over the reference engine, a raw HTTP client that checks every answer against the served OpenAPI document, and
SSE parsing."""

from __future__ import annotations

import contextlib
import http.client
import json
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core import hookimpl
from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.server.generation.state import ServerState
from sakura_core.server.http.connections import GuardedSite
from sakura_core.server.keys import STATE
from sakura_core.server.runner import RUNNER_OPTIONS
from sakura_core.server.settings import ServerSettings
from sakura_core.testing.ports import free_port
from sakura_core.testing.rawhttp import RawReply, exchange
from sakura_core.types import Delta, SamplingParams

MODEL_FILE = "models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf"
MODEL_ID = "sakura-7b-qwen2.5-v1.0-iq4xs"


class RecordingEngine(ReferenceEngine):
    """The reference engine, remembering the prompt and sampling parameters of every generation."""

    def __init__(self, options: ReferenceOptions | None = None) -> None:
        super().__init__(options)
        self.calls: list[tuple[str, SamplingParams]] = []
        self.closed = False

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        self.calls.append((prompt, params))
        return super().generate(prompt, params)

    async def close(self) -> None:
        self.closed = True


class ReferencePlugin:
    """Registers the test engine in-process."""

    @hookimpl
    def register_engines(self, register: Callable[[type[ReferenceEngine]], None]) -> None:
        register(RecordingEngine)


def make_registry(*plugins: tuple[str, Any]) -> PluginRegistry:
    """A registry with the built-in formats, the test engine and ``plugins``; no installed plugins."""
    return PluginRegistry.create(entry_points=False, plugins=[("reference", ReferencePlugin()), *plugins])


@dataclass
class SSE:
    """A parsed event stream: ``data`` payloads (strings) and comment lines, in order."""

    events: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> list[str]:
        return [value for kind, value in self.events if kind == "data"]

    @property
    def comments(self) -> list[str]:
        return [value for kind, value in self.events if kind == "comment"]

    def json(self) -> list[Any]:
        """Every data payload except the ``[DONE]`` marker, parsed."""
        return [json.loads(value) for value in self.data if value != "[DONE]"]


def parse_sse(raw: str) -> SSE:
    """Split an event stream into events; fails on a block that is neither a comment nor ``data: ...``."""
    parsed = SSE()
    assert raw.endswith("\n\n"), f"stream does not end with a blank line: {raw[-40:]!r}"
    for block in raw.split("\n\n")[:-1]:
        for line in block.split("\n"):
            if line.startswith(":"):
                parsed.events.append(("comment", line[1:].strip()))
            else:
                assert line.startswith("data: "), f"bad SSE line {line!r}"
                parsed.events.append(("data", line[len("data: ") :]))
    return parsed


class Contract:
    """The served OpenAPI document, used to validate real answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = document["components"]

    def _validate(self, schema: dict[str, Any], instance: Any) -> None:
        jsonschema.Draft202012Validator({**schema, "components": self.components}).validate(instance)

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        return self.document["paths"].get(path, {}).get(method.lower())

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        """``body`` matches the JSON schema the document gives for this route and status."""
        operation = self.operation(method, path)
        if operation is None or str(status) not in operation["responses"]:
            # unknown routes and statuses not listed per route (404/405/413 from the router) are error bodies
            assert status >= 400, f"{method} {path} answered {status}, which the document does not list"
            self._validate({"$ref": "#/components/schemas/ErrorResponse"}, body)
            return
        content = operation["responses"][str(status)]["content"]
        self._validate(content["application/json"]["schema"], body)

    def check_event(self, method: str, path: str, event: Any) -> None:
        """A stream's ``data:`` event matches the route's event schema (or is an error body)."""
        operation = self.operation(method, path)
        assert operation is not None
        stream = operation["responses"]["200"]["content"]["text/event-stream"]
        if isinstance(event, dict) and "error" in event:
            self._validate({"$ref": "#/components/schemas/ErrorResponse"}, event)
        else:
            self._validate(stream["x-sse-data"], event)

    def done_marker(self, method: str, path: str) -> bool:
        operation = self.operation(method, path)
        assert operation is not None
        return bool(operation["responses"]["200"]["content"]["text/event-stream"]["x-sse-done-marker"])


@dataclass
class Reply:
    """A raw HTTP answer."""

    status: int
    headers: Any
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json()
        assert set(body) == {"error"}, body
        return body["error"]

    def sse(self) -> SSE:
        return parse_sse(self.text)


class ApiClient:
    """Raw HTTP against the server; every JSON answer and stream event is checked against the OpenAPI document."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, contract: Contract) -> None:
        self.base_url = base_url
        self.session = session
        self.contract = contract

    async def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            text = await response.text()
            reply = Reply(response.status, response.headers, text)
        route = path.split("?")[0]
        content_type = reply.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            self.contract.check(method, route, reply.status, reply.json())
        elif content_type.startswith("text/event-stream"):
            events = reply.sse()
            for event in events.json():
                self.contract.check_event(method, route, event)
            if self.contract.done_marker(method, route):  # also after an error event: a stream is never just cut
                assert events.data[-1] == "[DONE]", events.data[-3:]
            else:
                assert "[DONE]" not in events.data
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        if body is not None:
            kwargs["json"] = body
        return await self.request("POST", path, **kwargs)


@dataclass
class RunningServer:
    """A server on a loopback port over a RecordingEngine."""

    url: str
    engine: RecordingEngine
    app: web.Application
    site: GuardedSite
    registry: PluginRegistry
    api: ApiClient

    @property
    def state(self) -> ServerState:
        return self.app[STATE]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(settings=, plugins=, model=, engine_class=, **engine_options)`` → a RunningServer,
    closed afterwards. ``engine_class`` (a RecordingEngine subclass) replaces the default engine."""
    started: list[tuple[web.AppRunner, aiohttp.ClientSession]] = []

    async def start(
        *,
        settings: ServerSettings | None = None,
        plugins: tuple[tuple[str, Any], ...] = (),
        model: str = MODEL_FILE,
        engine_class: type[RecordingEngine] = RecordingEngine,
        **engine_options: Any,
    ) -> RunningServer:
        registry = make_registry(*plugins)
        engine = engine_class(ReferenceOptions(**engine_options))
        info = await engine.load(model)
        if settings is not None and settings.alias:
            info = info.model_copy(update={"id": settings.alias})
        settings = settings or ServerSettings()
        app = create_app(engine, registry, info, settings)
        runner = web.AppRunner(app, **RUNNER_OPTIONS)
        await runner.setup()
        site = GuardedSite(runner, settings, host="127.0.0.1", port=0)
        await site.start()
        url = f"http://127.0.0.1:{site.port}"
        session = aiohttp.ClientSession()
        started.append((runner, session))
        async with session.get(url + "/openapi.json") as response:
            contract = Contract(await response.json())
        return RunningServer(url, engine, app, site, registry, ApiClient(url, session, contract))

    yield start
    for runner, session in started:
        await session.close()
        await runner.cleanup()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    """A default server: four parallel sequences, no token delay, no auth."""
    return await start_server()


@pytest.fixture
def api(server: RunningServer) -> ApiClient:
    """Raw HTTP to the default server."""
    return server.api


def greedy_answer(source: str, length: int = 24) -> str:
    """What the reference engine answers greedily when the last message (or prompt line) is ``source``."""
    return (source * (length // len(source) + 1))[:length]


@pytest.fixture
def expected_answer() -> Callable[..., str]:
    """``expected_answer(source, length=24)``: the reference engine's greedy answer to ``source``."""
    return greedy_answer


@pytest.fixture
def sse_parser() -> Callable[[str], SSE]:
    """Parse a raw event stream."""
    return parse_sse


@pytest.fixture
def recording_engine_class() -> type[RecordingEngine]:
    """The reference engine class that records its generations and whether it was closed."""
    return RecordingEngine


@pytest.fixture
def registry_factory() -> Callable[..., PluginRegistry]:
    """``registry_factory(*plugins)``: a registry with the built-in formats and the test engine."""
    return make_registry


# -- `sakura run` in a subprocess, on a real llama.cpp engine -------------------------------------------------------


@dataclass
class SakuraProcess:
    """``sakura run`` in a subprocess; its output goes to ``log_path``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"sakura run exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/health", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"sakura run never became ready:\n{self.log()[-3000:]}")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def spawn_sakura(model: Path, log_dir: Path, *args: str, nofile: tuple[int, int] | None = None) -> SakuraProcess:
    """Start ``sakura run -m model --no-self-check --listen 127.0.0.1:<free port> *args`` and wait for /health.

    ``nofile`` sets the process's (soft, hard) open-file limits before it starts.
    """
    port = free_port()
    log_path = log_dir / f"sakura-{port}.log"

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    command = [sys.executable, "-m", "sakura_core.cli", "run", "-m", str(model), "--no-self-check"]
    command += ["--listen", f"127.0.0.1:{port}", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files)
    started = SakuraProcess(process, port, log_path)
    try:
        started.wait_ready()
    except BaseException:
        started.stop()
        raise
    return started


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 GGUF named like a Sakura v1.0 model: llama.cpp loads and tokenises it for real."""
    from sakura_llamacpp.tiny_model import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def run_sakura(tiny_gguf: Path, tmp_path: Path) -> Iterator[Callable[..., SakuraProcess]]:
    """``run_sakura(*args, nofile=None)``: ``sakura run`` on the tiny GGUF with the llama.cpp engine, stopped after
    the test."""
    started: list[SakuraProcess] = []

    def start(*args: str, nofile: tuple[int, int] | None = None) -> SakuraProcess:
        started.append(spawn_sakura(tiny_gguf, tmp_path, *args, nofile=nofile))
        return started[-1]

    yield start
    for process in started:
        process.stop()


class HealthPoller:
    """Polls ``GET /health`` every 10 ms from a thread on one keep-alive connection; latencies in milliseconds.

    A thread of its own, so that what the test process does meanwhile (sending a hostile request) cannot delay
    the polls; the server is another process.
    """

    def __init__(self, port: int, interval: float = 0.01) -> None:
        self.port = port
        self.interval = interval
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="health-poller", daemon=True)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _poll(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed * 1000)
                self.statuses.append(response.status)
                time.sleep(max(0.0, self.interval - elapsed))
        finally:
            conn.close()

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.fixture
def health_poller() -> type[HealthPoller]:
    """The HealthPoller class: ``with health_poller(port) as poller: ...; poller.p99()``."""
    return HealthPoller


@pytest.fixture(scope="session")
def sakura_launcher() -> Callable[..., SakuraProcess]:
    """``spawn_sakura(model, log_dir, *args, nofile=None)``, for module-scoped servers (the caller stops them)."""
    return spawn_sakura


@pytest.fixture(scope="session")
def parse_raw_reply() -> Callable[[bytes], RawReply]:
    """Parse a raw HTTP answer read off a socket."""
    return RawReply.parse


@pytest.fixture(scope="session")
def raw_exchange() -> Callable[..., bytes]:
    """``raw_exchange(port, payload, timeout=10)``: the raw bytes the server answers on a fresh connection."""
    return exchange
