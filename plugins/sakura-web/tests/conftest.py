"""Fixtures for sakura-web's tests: the server on a tiny GGUF with the real llama.cpp engine, the workbench
plugin registered in-process, and a plugin that records every prompt the engine gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
from sakura_core.testing.ports import free_port
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


def write_srt(path: Path, lines: list[str]) -> Path:
    """A SubRip file made with pysubs2: one cue per line, two seconds apart."""
    import pysubs2

    subs = pysubs2.SSAFile()
    for number, text in enumerate(lines):
        subs.append(pysubs2.SSAEvent(start=number * 2000, end=number * 2000 + 1500, text=text))
    subs.save(str(path))
    return path


@pytest.fixture
def srt() -> Callable[[Path, list[str]], Path]:
    """``srt(path, lines)``: write a real .srt with one cue per line."""
    return write_srt


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

    async def upload(
        self, name: str, data: bytes, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """``POST /jobs`` with a file part called ``name`` (sent as given, unchecked) and the options as JSON."""
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
        if options is not None:
            form.add_field("options", json.dumps(options, ensure_ascii=False), content_type="application/json")
        return await self.json("POST", "/jobs", data=form, **kwargs)

    async def follow(self, job_id: str) -> list[Any]:
        """The job's event stream to its end: every Job it sent."""
        async with self.request("GET", f"/jobs/{job_id}/events", timeout=aiohttp.ClientTimeout(total=120)) as response:
            assert response.status == 200
            return await self.events(response)

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


# --- the browser tests (test_page_*.py): `sakura run` as a subprocess on the tiny model, and headless Chromium ---

#: Debian's chromium and chromium-driver (scripts/test.sh installs them); selenium is told both paths, so its
#: selenium-manager never runs and nothing is downloaded.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Set to write each view's screenshot to docs/images/web-*.png (CI leaves the committed ones alone).
SCREENSHOTS_ENV = "SAKURA_WEB_SCREENSHOTS"
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class SakuraProcess:
    """``sakura run`` on the tiny model in a subprocess (recording its prompts), restartable on the same port."""

    model: Path
    folder: Path
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def prompt_log(self) -> Path:
        return self.folder / "prompts.jsonl"

    @property
    def jobs_dir(self) -> Path:
        return self.folder / "jobs"

    def prompts(self) -> list[str]:
        """Every prompt the engine got so far."""
        if not self.prompt_log.exists():
            return []
        return [json.loads(line)["prompt"] for line in self.prompt_log.read_text(encoding="utf-8").splitlines()]

    def start(self) -> None:
        """Start it and wait until /health answers 200."""
        command = [
            sys.executable,
            str(Path(__file__).with_name("recording_sakura.py")),
            "run",
            "--model",
            str(self.model),
            "--port",
            str(self.port),
            "--jobs-dir",
            str(self.jobs_dir),
            *(f"--{name.replace('_', '-')}={value}" for name, value in ENGINE_OPTIONS.items()),
            *self.extra,
        ]
        env = {
            **os.environ,
            "SAKURA_TEST_PROMPTS": str(self.prompt_log),
            "SAKURA_LOAD_PLUGINS": "llamacpp,translate,web",
        }
        log = open(self.folder / "server.log", "ab")  # the process writes it until stopped
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("sakura run did not become healthy in 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: as a crash would) and wait for it to end."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def requests_served(self) -> float:
        """The server's own count of the requests it answered (sakura_requests_total, every route)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("sakura_requests_total")
        )


@pytest.fixture(scope="session")
def sakura_process(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SakuraProcess]]:
    """``sakura_process(*extra_args)``: a started ``sakura run`` (stopped at the end of the session)."""
    started: list[SakuraProcess] = []

    def start(*extra: str) -> SakuraProcess:
        process = SakuraProcess(tiny_gguf, tmp_path_factory.mktemp("sakura-run"), extra)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def page_server(sakura_process: Callable[..., SakuraProcess]) -> SakuraProcess:
    """The shared server of the browser tests (no auth)."""
    return sakura_process()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session, driven through Debian's chromedriver, its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=zh-CN",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.downloads = downloads  # type: ignore[attr-defined]
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], None]:
    """``screenshot(driver, name)``: save the window as docs/images/web-NAME.png when SAKURA_WEB_SCREENSHOTS is
    set."""

    def save(driver: Any, name: str) -> None:
        if os.environ.get(SCREENSHOTS_ENV):
            folder = REPO_ROOT / "docs" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(folder / f"web-{name}.png"))

    return save
