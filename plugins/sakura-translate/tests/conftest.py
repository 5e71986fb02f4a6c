"""Fixtures for sakura-translate's tests: real input files made with the libraries users' files come from, the CLI
run in-process or as a subprocess, and a plugin that records every finished generation."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from sakura_core import hookimpl
from sakura_core.cli import cli
from sakura_core.engine import Engine
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.server.settings import ServerSettings
from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo

SAKURA = [sys.executable, "-c", "from sakura_core.cli import main; main()"]

NOVEL_LINES = [
    "　吾輩は猫である。名前はまだ無い。",
    "",
    "　どこで生れたかとんと見当がつかぬ。",
    "　何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    "　吾輩はここで始めて人間というものを見た。",
    "",
    "　しかもあとで聞くとそれは書生という人間中で一番獰悪な種族であったそうだ。",
]
CHAPTERS = [
    ("第一章　出会い", ["吾輩は猫である。", "名前はまだ無い。"]),
    ("第二章　書生", ["どこで生れたかとんと見当がつかぬ。", "書生は時々我々を捕えて煮て食うという話である。"]),
]


@dataclass
class Generation:
    """One finished generation, as the after_generate hook saw it."""

    messages: list[dict[str, Any]]
    text: str
    finish_reason: str
    #: The token budget the engine was given, and the prompt's length.
    max_tokens: int = 0
    prompt_tokens: int = 0

    @property
    def user(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


@dataclass
class Recorder:
    """A plugin recording every generation that ran to its end (stop or length)."""

    generations: list[Generation] = field(default_factory=list)

    @hookimpl
    def after_generate(self, request: GenerationRequest, result: GenerationResult, model: ModelInfo) -> None:
        """Record finished generations only: a cancelled one was not generated."""
        if result.finish_reason in ("stop", "length"):
            messages = list(request.messages or [])
            generation = Generation(
                messages, result.text, result.finish_reason, request.params.max_tokens, result.prompt_tokens
            )
            self.generations.append(generation)

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.generations]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def translate_cli(recorder: Recorder) -> Callable[..., click.testing.Result]:
    """``translate_cli(*args)``: ``sakura translate ARGS`` in this process, with installed plugins and the recorder."""

    def invoke(*args: str | Path) -> click.testing.Result:
        registry = PluginRegistry.create(plugins=[("recorder", recorder)])
        return CliRunner().invoke(cli, ["translate", *map(str, args)], obj=CliState(registry))

    return invoke


ECHO = ("--engine", "echo", "--model", "sakura-echo-v1.0", "--greedy")
#: The echo engine's answer is its Japanese input: these checks would flag every line.
ECHO_CHECKS_OFF = ("--no-check", "kana", "--no-check", "untranslated")


@pytest.fixture
def echo_args() -> tuple[str, ...]:
    """In-process echo engine, greedy (echo sampling shuffles), one segment per chunk: output = input, so the
    checks that an echo fails by design (kana left, untranslated) are off."""
    return (*ECHO, *ECHO_CHECKS_OFF, "--chunk-chars", "1")


def tiny_png() -> bytes:
    """A real 1×1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + (chunk(b"IEND", b""))
    )


CSS = b"p { text-indent: 1em; }\nh1 { color: #333; }\n"


def write_epub(
    path: Path, chapters: list[tuple[str, list[str]]] = CHAPTERS, ruby: bool = True, title: str = "吾輩は猫である"
) -> Path:
    """An EPUB 3 book made with ebooklib: a stylesheet, an image, chapters, NCX and navigation tables of contents."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("sakura-test-book")
    book.set_title(title)
    book.set_language("ja")
    book.add_author("夏目漱石")
    css = epub.EpubItem(uid="style", file_name="style/main.css", media_type="text/css", content=CSS)
    image = epub.EpubImage(uid="image", file_name="images/cat.png", media_type="image/png", content=tiny_png())
    book.add_item(css)
    book.add_item(image)
    items = []
    for number, (title, paragraphs) in enumerate(chapters, start=1):
        body = f"<h1>{title}</h1>" + "".join(f'<p class="text">{p}</p>' for p in paragraphs)
        if number == 1:
            body += '<p><img src="../images/cat.png" alt="cat"/></p>'
            if ruby:
                body += "<p><ruby>吾輩<rt>わがはい</rt></ruby>は<em>猫</em>だ。</p>"
        item = epub.EpubHtml(title=title, file_name=f"text/chapter{number}.xhtml", lang="ja")
        item.content = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
        item.add_item(css)
        book.add_item(item)
        items.append(item)
    book.toc = [
        epub.Link(item.file_name, title, f"chapter{n}")
        for n, (item, (title, _)) in enumerate(zip(items, chapters, strict=True), start=1)
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path


def write_subtitles(path: Path) -> Path:
    """A subtitle file made with pysubs2 (format from the suffix): styles, override tags, line breaks, a comment."""
    import pysubs2

    subs = pysubs2.SSAFile()
    subs.styles["Sign"] = pysubs2.SSAStyle(fontname="Noto Sans CJK JP", fontsize=30, bold=True)
    subs.append(pysubs2.SSAEvent(start=1000, end=3500, text="おはようございます、先輩。"))
    subs.append(pysubs2.SSAEvent(start=4000, end=6000, text=r"{\an8}今日もいい天気ですね。"))
    subs.append(pysubs2.SSAEvent(start=6000, end=9000, text=r"一行目です\N二行目です", style="Sign", name="佐藤"))
    subs.append(pysubs2.SSAEvent(start=9000, end=9500, text="翻訳しないコメント", type="Comment"))
    subs.append(pysubs2.SSAEvent(start=10000, end=12000, text="ありがとう。本当に、ありがとう。"))
    subs.save(str(path))
    return path


def epub_paragraphs(path: Path) -> list[str]:
    """The text of every heading and paragraph of a book's chapters, in spine order, as the reader shows them."""
    from ebooklib import epub
    from lxml import etree

    book = epub.read_epub(str(path))
    texts = []
    for item_id, _ in book.spine:
        item = book.get_item_with_id(item_id)
        if isinstance(item, epub.EpubNav):
            continue
        root = etree.fromstring(item.content)
        xhtml = "{http://www.w3.org/1999/xhtml}"
        texts.extend("".join(element.itertext()).strip() for element in root.iter(f"{xhtml}h1", f"{xhtml}p"))
    return [text for text in texts if text]


GALTRANSL_SCRIPT = [
    {"name": "佐藤", "message": "「おはようございます、先輩」"},
    {"message": "窓の外を眺めながら、小さくため息をついた。"},
    {"name": "先輩", "message": "一行目\n二行目", "index": 3},
    {"name": "謎の声", "message": "……"},
]


def write_galtransl(path: Path) -> Path:
    path.write_text(json.dumps(GALTRANSL_SCRIPT, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def files() -> Any:
    """The file builders, for tests."""

    class Files:
        novel_lines = NOVEL_LINES
        chapters = CHAPTERS
        galtransl_script = GALTRANSL_SCRIPT
        css = CSS
        epub = staticmethod(write_epub)
        subtitles = staticmethod(write_subtitles)
        galtransl = staticmethod(write_galtransl)
        epub_paragraphs = staticmethod(epub_paragraphs)
        png = staticmethod(tiny_png)

        @staticmethod
        def novel(path: Path, encoding: str = "shift_jis", lines: list[str] = NOVEL_LINES) -> Path:
            path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
            return path

    return Files


@dataclass
class AppServer:
    """The core's aiohttp application over a loaded engine on a loopback port; it can be stopped and started again
    on the same port."""

    engine: Engine
    registry: PluginRegistry
    recorder: Recorder
    settings: ServerSettings = field(default_factory=ServerSettings)
    server: TestServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AppServer:
        assert self.engine.model_info is not None
        app = create_app(self.engine, self.registry, self.engine.model_info, self.settings)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.port = self.server.port
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


@pytest.fixture
async def app_server(recorder: Recorder) -> AsyncIterator[Callable[..., Awaitable[AppServer]]]:
    """``await app_server(engine, settings=None)``: serve a loaded engine (with the recorder); stopped afterwards."""
    started: list[AppServer] = []

    async def start(engine: Engine, settings: ServerSettings | None = None) -> AppServer:
        registry = PluginRegistry.create(entry_points=False, plugins=[("recorder", recorder)])
        server = AppServer(engine, registry, recorder, settings or ServerSettings())
        started.append(server)
        return await server.start()

    yield start
    for server in started:
        await server.stop()


class TranslateProcess:
    """``sakura translate`` as a subprocess (stdout and stderr piped, so not a terminal)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def start(self, *args: Any, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *SAKURA,
            "translate",
            *map(str, args),
            env={**self.env, **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    @staticmethod
    async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
        """Wait for it: (exit code, stdout, stderr)."""
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def run(self, *args: Any, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return await self.finish(await self.start(*args, env=env))


@pytest.fixture
def translate_process() -> TranslateProcess:
    """``sakura translate`` subprocesses, unbuffered."""
    return TranslateProcess({**os.environ, "PYTHONUNBUFFERED": "1"})
