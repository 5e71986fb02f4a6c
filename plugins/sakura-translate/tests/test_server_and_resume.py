"""``sakura translate --server`` as a real subprocess against a real Sakura server (the echo engine behind the core's
aiohttp application): slots, the API key, and resume after SIGINT, SIGKILL or a dropped server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from ebooklib import epub
from sakura_echo.engine import EchoEngine, EchoOptions
from sakura_translate.cache import ChunkCache

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.server.settings import ServerSettings

LINES = [f"　第{n}行。吾輩は猫である。名前はまだ無い。" for n in range(1, 41)]
KEY = "sk-translate-test"


@dataclass
class EchoServer:
    """A Sakura server over the echo engine, which can be stopped and started again on the same port."""

    engine: EchoEngine
    registry: PluginRegistry
    recorder: Any
    server: TestServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        assert self.engine.model_info is not None
        app = create_app(self.engine, self.registry, self.engine.model_info, ServerSettings(api_key=KEY))
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


@pytest.fixture
async def echo_server(recorder: Any) -> AsyncIterator[EchoServer]:
    """Three slots; each token takes 4 ms, so a 20-character line takes about 0.1 s."""
    engine = EchoEngine(EchoOptions(parallel=3, token_delay=0.004))
    await engine.load("sakura-echo-v1.0")
    registry = PluginRegistry.create(entry_points=False, plugins=[("recorder", recorder)])
    server = EchoServer(engine, registry, recorder)
    await server.start()
    yield server
    await server.stop()
    await engine.close()


async def start_translate(command: list[str], env: dict[str, str], *args: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, "translate", *map(str, args), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def wait_for_generations(recorder: Any, count: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(3000):
        if len(recorder.generations) >= count:
            return
        assert process.returncode is None, "sakura translate ended early"
        await asyncio.sleep(0.01)
    raise AssertionError("sakura translate made no progress")


async def test_epub_through_a_server_with_its_slots_and_key(
    echo_server: EchoServer, tmp_path: Path, files: Any, sakura_command: list[str], subprocess_env: dict[str, str]
) -> None:
    source = files.epub(tmp_path / "neko.epub")
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1")
    refused = await finish(await start_translate(sakura_command, subprocess_env, *args))
    assert refused[0] == 2 and "--api-key" in refused[2]
    env = {**subprocess_env, "SAKURA_API_KEY": KEY}
    code, stdout, stderr = await finish(await start_translate(sakura_command, env, *args))
    assert code == 0, stderr
    assert "model sakura-echo-v1.0 (v1.0 prompt) via " + echo_server.url + ", 3 chunks at a time" in stdout
    original, translated = epub.read_epub(str(source)), epub.read_epub(str(tmp_path / "neko.zh.epub"))
    assert [i.get_name() for i in translated.get_items()] == [i.get_name() for i in original.get_items()]
    texts = sorted(echo_server.recorder.texts)
    assert len(texts) == len(set(texts)) == 7  # 2 headings, 4 paragraphs, 1 ruby paragraph: each once
    assert stderr == ""  # not a terminal: no progress bar


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
async def test_a_killed_run_resumes_without_translating_anything_twice(
    stop: signal.Signals,
    echo_server: EchoServer,
    tmp_path: Path,
    files: Any,
    sakura_command: list[str],
    subprocess_env: dict[str, str],
) -> None:
    source = files.novel(tmp_path / "novel.txt", "shift_jis", LINES)
    output = tmp_path / "novel.zh.txt"
    cache = tmp_path / "novel.zh.txt.sakura-cache.jsonl"
    env = {**subprocess_env, "SAKURA_API_KEY": KEY}
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1")
    recorder = echo_server.recorder

    process = await start_translate(sakura_command, env, *args)
    await wait_for_generations(recorder, 9, process)
    process.send_signal(stop)
    code, _, stderr = await finish(process)
    if stop == signal.SIGINT:
        assert code == 130 and "interrupted: finished chunks are saved" in stderr
    else:
        assert code == -signal.SIGKILL
    assert not output.exists()  # nothing half-written
    saved = {chunk.translation for chunk in ChunkCache(cache).chunks.values()}
    assert 9 - 3 <= len(saved) < len(LINES)  # the server may have finished up to 3 the client never received

    generated_before = len(recorder.generations)
    code, stdout, stderr = await finish(await start_translate(sakura_command, env, *args))
    assert code == 0, stderr
    again = recorder.texts[generated_before:]
    assert not set(again) & saved, "a chunk saved before the interruption was translated again"
    assert Counter(again).most_common(1)[0][1] == 1
    assert saved | set(again) == {line.strip("\u3000") for line in LINES}
    assert f"{len(LINES)} chunks ({len(saved)} from cache)" in stdout
    assert not cache.exists()

    uninterrupted = tmp_path / "uninterrupted.txt"
    code, _, stderr = await finish(await start_translate(sakura_command, env, *args, "-o", uninterrupted))
    assert code == 0, stderr
    assert output.read_bytes() == uninterrupted.read_bytes()


async def test_a_dropped_server_is_waited_for_then_reported(
    echo_server: EchoServer, tmp_path: Path, files: Any, sakura_command: list[str], subprocess_env: dict[str, str]
) -> None:
    source = files.novel(tmp_path / "novel.txt", "utf-8", LINES)
    env = {**subprocess_env, "SAKURA_API_KEY": KEY}
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1")
    recorder = echo_server.recorder

    # the server goes away for a moment and comes back on the same address: the run carries on
    process = await start_translate(sakura_command, env, *args, "--keep-cache")
    await wait_for_generations(recorder, 6, process)
    await echo_server.stop()
    await asyncio.sleep(0.3)
    await echo_server.start()
    code, _, stderr = await finish(process)
    assert code == 0, stderr
    assert "trying again" in stderr
    assert sorted(recorder.texts) == sorted(line.strip("\u3000") for line in LINES)

    # gone for good: one line naming the server, exit code 1, the finished chunks kept for the next run
    (tmp_path / "novel.zh.txt").unlink()
    os.remove(tmp_path / "novel.zh.txt.sakura-cache.jsonl")
    recorder.generations.clear()
    process = await start_translate(sakura_command, env, *args)
    await wait_for_generations(recorder, 6, process)
    await echo_server.stop()
    code, _, stderr = await finish(process)
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"the server at {echo_server.url} stopped answering" in errors[0]
    assert "run the same command again" in errors[0]
    assert not (tmp_path / "novel.zh.txt").exists()
    saved = ChunkCache(tmp_path / "novel.zh.txt.sakura-cache.jsonl").chunks
    assert len(saved) >= 6 - 3 and {c.translation for c in saved.values()} <= set(recorder.texts)
