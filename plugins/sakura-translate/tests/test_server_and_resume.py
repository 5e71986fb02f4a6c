"""``sakura translate --server`` as a real subprocess against a real Sakura server (the echo engine behind the core's
aiohttp application): slots, the API key, a server still loading, and resume after SIGINT, SIGKILL or a dropped
server."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from ebooklib import epub
from sakura_echo.engine import EchoEngine, EchoOptions
from sakura_translate.cache import ChunkCache

from sakura_core.loaded_model import LoadedModel
from sakura_core.server.app import build_app
from sakura_core.server.generation.state import ServerState
from sakura_core.server.settings import ServerSettings

LINES = [f"　第{n}行。吾輩は猫である。名前はまだ無い。" for n in range(1, 41)]
SENT = {line.strip("\u3000") for line in LINES}
KEY = "sk-translate-test"
#: The echo answers its Japanese input: checks that would flag every line are off.
ECHO_CHECKS_OFF = ("--no-check", "kana", "--no-check", "untranslated")
WITH_KEY = {"SAKURA_API_KEY": KEY}


@pytest.fixture
async def echo_server(app_server: Any) -> AsyncIterator[Any]:
    """Three slots, a key; each token takes 4 ms, so a 20-character line takes about 0.1 s."""
    engine = EchoEngine(EchoOptions(parallel=3, token_delay=0.004))
    await engine.load("sakura-echo-v1.0")
    yield await app_server(engine, ServerSettings(api_key=KEY))
    await engine.close()


async def wait_for_generations(recorder: Any, count: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(3000):
        if len(recorder.generations) >= count:
            return
        assert process.returncode is None, "sakura translate ended early"
        await asyncio.sleep(0.01)
    raise AssertionError("sakura translate made no progress")


async def test_epub_through_a_server_with_its_slots_and_key(
    echo_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    source = files.epub(tmp_path / "neko.epub")
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1", *ECHO_CHECKS_OFF)
    code, _, stderr = await translate_process.run(*args)
    assert code == 2 and "refused the request (401); pass its key with --api-key" in stderr
    code, stdout, stderr = await translate_process.run(*args, env=WITH_KEY)
    assert code == 0, stderr
    assert f"model sakura-echo-v1.0 (v1.0 prompt) via {echo_server.url}, 3 chunks at a time" in stdout
    original, translated = epub.read_epub(str(source)), epub.read_epub(str(tmp_path / "neko.zh.epub"))
    assert [i.get_name() for i in translated.get_items()] == [i.get_name() for i in original.get_items()]
    texts = echo_server.recorder.texts
    assert len(texts) == len(set(texts)) == 7  # 2 headings, 4 paragraphs, 1 ruby paragraph: each once
    assert stderr == ""  # not a terminal: no progress bar


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
async def test_a_killed_run_resumes_without_translating_anything_twice(
    stop: signal.Signals, echo_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    source = files.novel(tmp_path / "novel.txt", "shift_jis", LINES)
    output = tmp_path / "novel.zh.txt"
    cache = tmp_path / "novel.zh.txt.sakura-cache.jsonl"
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1", *ECHO_CHECKS_OFF)
    recorder = echo_server.recorder

    process = await translate_process.start(*args, env=WITH_KEY)
    await wait_for_generations(recorder, 9, process)
    process.send_signal(stop)
    code, _, stderr = await translate_process.finish(process)
    if stop == signal.SIGINT:
        assert code == 130 and "interrupted: finished chunks are saved" in stderr
    else:
        assert code == -signal.SIGKILL
    assert not output.exists()  # nothing half-written
    saved = {chunk.translation for chunk in ChunkCache(cache).chunks.values()}
    assert 9 - 3 <= len(saved) < len(LINES)  # the server may have finished up to 3 the client never received

    generated_before = len(recorder.generations)
    code, stdout, stderr = await translate_process.run(*args, env=WITH_KEY)
    assert code == 0, stderr
    again = recorder.texts[generated_before:]
    assert not set(again) & saved, "a chunk saved before the interruption was translated again"
    assert Counter(again).most_common(1)[0][1] == 1
    assert saved | set(again) == SENT
    assert f"{len(LINES)} chunks ({len(saved)} from cache)" in stdout
    assert not cache.exists()

    uninterrupted = tmp_path / "uninterrupted.txt"
    code, _, stderr = await translate_process.run(*args, "-o", uninterrupted, env=WITH_KEY)
    assert code == 0, stderr
    assert output.read_bytes() == uninterrupted.read_bytes()


async def test_a_dropped_server_is_waited_for_then_reported(
    echo_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    source = files.novel(tmp_path / "novel.txt", "utf-8", LINES)
    output, cache = tmp_path / "novel.zh.txt", tmp_path / "novel.zh.txt.sakura-cache.jsonl"
    args = (source, "--server", echo_server.url, "--greedy", "--chunk-chars", "1", *ECHO_CHECKS_OFF)
    recorder = echo_server.recorder

    # the server goes away for a moment and comes back on the same address: the run carries on
    process = await translate_process.start(*args, "--keep-cache", env=WITH_KEY)
    await wait_for_generations(recorder, 6, process)
    await echo_server.stop()
    await asyncio.sleep(0.3)
    await echo_server.start()
    code, _, stderr = await translate_process.finish(process)
    assert code == 0, stderr
    assert "trying again" in stderr
    assert sorted(recorder.texts) == sorted(SENT)

    # gone for good: one line naming the server, exit code 1, the finished chunks kept for the next run
    output.unlink()
    cache.unlink()
    recorder.generations.clear()
    process = await translate_process.start(*args, env=WITH_KEY)
    await wait_for_generations(recorder, 6, process)
    await echo_server.stop()
    code, _, stderr = await translate_process.finish(process)
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"the server at {echo_server.url} stopped answering" in errors[0]
    assert "run the same command again" in errors[0]
    assert not output.exists()
    saved = ChunkCache(cache).chunks
    assert len(saved) >= 6 - 3 and {c.translation for c in saved.values()} <= set(recorder.texts)


async def test_a_server_still_loading_its_model_is_waited_for(
    echo_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    state = ServerState(ServerSettings(), echo_server.engine, echo_server.registry)  # answers 503 until ready
    server = TestServer(build_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        source = files.novel(tmp_path / "novel.txt", "utf-8", LINES[:3])
        url = f"http://127.0.0.1:{server.port}"
        process = await translate_process.start(source, "--server", url, "--greedy")
        await asyncio.sleep(2.0)
        assert process.returncode is None
        state.set_ready(LoadedModel(echo_server.engine, echo_server.registry, echo_server.engine.model_info))
        code, stdout, stderr = await translate_process.finish(process)
        assert code == 0, stderr
        assert f"{url} is loading its model; waiting" in stderr
        assert "1 chunks (0 from cache)" in stdout
    finally:
        await server.close()
