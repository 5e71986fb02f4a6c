"""End to end: ``sakura run --engine ollama`` in a subprocess, a real Ollama behind it, the openai client in front."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from sakura_ollama.testing.real_server import RealOllama, answers, start_real_ollama

from sakura_core.testing.metrics import metric_value
from sakura_core.testing.ports import free_port

MESSAGES = [
    {"role": "system", "content": "你是一个轻小说翻译模型。"},
    {"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"},
]
START_SECONDS = 60.0


@dataclass
class SakuraProcess:
    """A running ``sakura run``."""

    process: asyncio.subprocess.Process
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def start_sakura(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> SakuraProcess:
    """``python -m sakura_core.cli run ARGS --listen 127.0.0.1:<free>``, waited for until /health says ok."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sakura_core.cli",
            "run",
            *args,
            "--listen",
            f"127.0.0.1:{port}",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    sakura = SakuraProcess(process, url, log_path)
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient() as client:
        while True:
            if process.returncode is not None or time.monotonic() > deadline:
                await stop_sakura(sakura)
                raise AssertionError(f"sakura did not start; its output:\n{sakura.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200:
                    return sakura
            await asyncio.sleep(0.1)


async def stop_sakura(sakura: SakuraProcess) -> int:
    """SIGINT, as Ctrl-C; the exit status."""
    if sakura.process.returncode is None:
        sakura.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(sakura.process.wait(), 30)
        except TimeoutError:
            sakura.process.kill()
            await sakura.process.wait()
    return sakura.process.returncode or 0


@pytest.fixture
async def sakura(real_server: RealOllama, whole_character_gguf: Path, tmp_path: Path) -> AsyncIterator[SakuraProcess]:
    """sakura serving the tiny model through the session's real Ollama, two requests at a time."""
    args = ["--engine", "ollama", "--model", str(whole_character_gguf), "--ollama-host", real_server.url]
    args += ["--no-spawn", "--num-ctx", "4096", "-np", "2", "--no-self-check"]
    process = await start_sakura(args, tmp_path / "sakura.log")
    yield process
    assert await stop_sakura(process) == 0, process.log()


def client_for(sakura: SakuraProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sakura.url}/v1", api_key="sk-114514", max_retries=0)


async def test_chat_completion_through_sakura_and_ollama(sakura: SakuraProcess) -> None:
    client = client_for(sakura)
    models = await client.models.list()
    assert [m.id for m in models.data] == ["sakura-whole-qwen2-v1.0-f32"]
    reply = await client.chat.completions.create(model="sukinishiro", messages=MESSAGES, max_tokens=12)
    assert reply.model == "sakura-whole-qwen2-v1.0-f32"
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens > 0
    again = await client.chat.completions.create(model="", messages=MESSAGES, max_tokens=12, temperature=0)
    assert again.usage is not None and again.usage.prompt_tokens == reply.usage.prompt_tokens
    await client.close()


async def test_streaming_through_sakura_and_ollama(sakura: SakuraProcess) -> None:
    client = client_for(sakura)
    whole = await client.chat.completions.create(
        model="x", messages=MESSAGES, max_tokens=16, extra_body={"do_sample": False}
    )
    stream = await client.chat.completions.create(
        model="x",
        messages=MESSAGES,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"do_sample": False},
    )
    chunks = [chunk async for chunk in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    await client.close()


async def test_concurrent_requests_each_get_their_own_answer(sakura: SakuraProcess) -> None:
    client = client_for(sakura)
    texts = ["雨の音で目が覚めた。", "ありがとう。", "俺の名前は佐藤悠人。", "やる気マンゴスキン", "「待って！」"]

    async def translate(text: str) -> str:
        reply = await client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": f"将下面的日文文本翻译成中文：{text}"}],
            max_tokens=16,
            extra_body={"do_sample": False},
        )
        return reply.choices[0].message.content or ""

    alone = [await translate(text) for text in texts]
    together = await asyncio.gather(*(translate(text) for text in texts))
    assert together == alone
    await client.close()


async def test_a_client_disconnect_frees_the_slot(sakura: SakuraProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(f"{sakura.url}/metrics")).text
        body = {"messages": MESSAGES, "max_tokens": 3500, "stream": True, "do_sample": False}  # about 6 s
        async with http.stream("POST", f"{sakura.url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass
            busy = (await http.get(f"{sakura.url}/health")).json()
            assert busy["slots_processing"] == 1
        deadline = time.monotonic() + START_SECONDS
        while (await http.get(f"{sakura.url}/health")).json()["slots_processing"] != 0:
            assert time.monotonic() < deadline, "the slot stayed busy after the client left"
            await asyncio.sleep(0.05)
        after = (await http.get(f"{sakura.url}/metrics")).text
    # the slot was freed by the cancellation, before the generation's end: not a wall-clock bound, which the
    # machine's load would decide
    cancelled = 'sakura_generations_total{outcome="cancelled"}'
    assert metric_value(after, cancelled) == metric_value(before, cancelled, default=0) + 1
    tokens = "sakura_completion_tokens_total"
    assert metric_value(after, tokens) - metric_value(before, tokens) < 3500


async def test_an_unreachable_ollama_is_one_line_and_exit_status_1(tmp_path: Path, whole_character_gguf: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sakura_core.cli",
        "run",
        "--engine",
        "ollama",
        "--model",
        str(whole_character_gguf),
        "--ollama-host",
        f"127.0.0.1:{port}",
        "--no-spawn",
        "--listen",
        f"127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"Error: no Ollama server answers at http://127.0.0.1:{port}: start one with `ollama serve`")
    assert "Traceback" not in stderr.decode()


async def test_sakura_spawns_ollama_and_stops_it_on_exit(
    ollama_on_path: Path, tmp_path: Path, whole_character_gguf: Path
) -> None:
    ollama_port = free_port()
    args = ["--engine", "ollama", "--model", str(whole_character_gguf), "--ollama-host", f"127.0.0.1:{ollama_port}"]
    sakura = await start_sakura([*args, "--num-ctx", "512", "--no-self-check"], tmp_path / "sakura.log")
    try:
        assert await asyncio.to_thread(answers, f"http://127.0.0.1:{ollama_port}")
        client = client_for(sakura)
        reply = await client.chat.completions.create(model="x", messages=MESSAGES, max_tokens=4)
        assert reply.usage is not None and reply.usage.completion_tokens == 4
        await client.close()
    finally:
        assert await stop_sakura(sakura) == 0, sakura.log()
    assert not await asyncio.to_thread(answers, f"http://127.0.0.1:{ollama_port}")
    assert "stopped ollama serve" in sakura.log()


async def test_a_disconnect_reaches_ollama_through_sakura(
    ollama_executable: str, tmp_path: Path, whole_character_gguf: Path
) -> None:
    """Ollama runs one sequence: the next request is answered at once only if the abandoned one was stopped."""
    ollama = await asyncio.to_thread(start_real_ollama, tmp_path / "home", parallel=1, executable=ollama_executable)
    args = ["--engine", "ollama", "--model", str(whole_character_gguf), "--ollama-host", ollama.url]
    sakura = await start_sakura([*args, "--no-spawn", "--num-ctx", "4096", "--no-self-check"], tmp_path / "s.log")
    url = f"{sakura.url}/v1/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            started = time.perf_counter()
            reply = await http.post(url, json={"messages": MESSAGES, "max_tokens": 1000, "do_sample": False})
            per_thousand = time.perf_counter() - started
            assert reply.json()["usage"]["completion_tokens"] == 1000
            body = {"messages": MESSAGES, "max_tokens": 4000, "stream": True, "do_sample": False}
            async with http.stream("POST", url, json=body) as response:
                lines = response.aiter_lines()
                while not (await anext(lines)).startswith("data: "):
                    pass
            started = time.perf_counter()
            reply = await http.post(url, json={"messages": MESSAGES, "max_tokens": 8, "do_sample": False})
            waited = time.perf_counter() - started
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 8
        # the abandoned request had about 4 * per_thousand of work left
        access = [line for line in sakura.log().splitlines() if "sakura_core.server.access: POST" in line]
        generates = [line for line in ollama.log().splitlines() if "/api/generate" in line]
        assert waited < 1.5 * per_thousand, "\n".join(
            [f"the next request waited {waited:.1f} s: Ollama kept generating", *access, *generates]
        )
    finally:
        assert await stop_sakura(sakura) == 0, sakura.log()
        await asyncio.to_thread(ollama.stop)


async def test_the_original_servers_command_line_works(
    real_server: RealOllama, whole_character_gguf: Path, tmp_path: Path
) -> None:
    args = ["--ollama", "--model_name_or_path", str(whole_character_gguf), "--model_version", "0.9"]
    args += ["--trust_remote_code", "--no-auth", "--ollama_host", real_server.url, "--num_ctx", "512"]
    sakura = await start_sakura(args, tmp_path / "sakura.log")
    try:
        async with httpx.AsyncClient() as http:
            info = (await http.get(f"{sakura.url}/v1/chat/model_info")).json()
            slots = (await http.get(f"{sakura.url}/slots")).json()
        assert info["model_version"] == "0.9" and info["model_name_or_path"] == str(whole_character_gguf)
        assert [slot["n_ctx"] for slot in slots] == [512] * 4
    finally:
        assert await stop_sakura(sakura) == 0, sakura.log()
