"""The ollama engine against a real Ollama server (CI installs one with tools/install_test_ollama.sh).

These tests do not skip: without an Ollama executable they fail with the command that installs one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import llama_cpp
import pytest
from aiohttp.test_utils import TestServer
from sakura_ollama.api import OllamaAddress, OllamaAPI
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.model_source import takes_files
from sakura_ollama.options import OllamaOptions
from sakura_ollama.testing import EngineFactory, chatml, collect
from sakura_ollama.testing.real_server import RealOllama, answers, start_real_ollama

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.testing.conformance import EngineConformance
from sakura_core.testing.ports import free_port
from sakura_core.types import SamplingParams

TEXTS = ("やる気マンゴスキン", "彼女は窓の外を眺めながら、小さくため息をついた。", "雨の音で目が覚めた。")
PROMPTS = [chatml(text) for text in TEXTS]


def greedy(max_tokens: int, **changes) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, do_sample=False, **changes)


def llama_cpp_greedy(gguf: Path, prompt: str, limit: int) -> tuple[str, int, bool]:
    """llama.cpp's greedy output text, its token count (without the end token) and whether it ended."""
    llm = llama_cpp.Llama(str(gguf), n_ctx=512, n_threads=2, verbose=False)
    try:
        tokens: list[int] = []
        ended = False
        for token in llm.generate(
            llm.tokenize(prompt.encode(), add_bos=True, special=True), top_k=1, temp=0.0, repeat_penalty=1.0
        ):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                ended = True
                break
            tokens.append(token)
            if len(tokens) >= limit:
                break
        return llm.detokenize(tokens).decode("utf-8", "ignore"), len(tokens), ended
    finally:
        llm.close()


async def test_a_local_gguf_is_imported_and_listed(
    real_server: RealOllama, make_engine: EngineFactory, whole_character_gguf: Path
) -> None:
    engine = await make_engine(real_server.url, whole_character_gguf, num_ctx=512)
    api = OllamaAPI(OllamaAddress.parse(real_server.url))
    try:
        listed = await api.client.list()
    finally:
        await api.close()
    assert "sakura-whole-qwen2-v1.0-f32:latest" in [m.model for m in listed.models]
    assert engine.server_version
    assert engine.model_info is not None and engine.model_info.version == "1.0"
    assert engine.model_info.meta is not None and engine.model_info.meta["n_vocab"] == 515


async def test_ollama_0_9_creates_the_model_from_files(
    ollama_0_9_executable: str, tmp_path: Path, whole_character_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The current ``/api/create`` (``files``: file name to blob digest) against a real server, Ollama 0.9.3 (the
    newest build a registry ships): no Modelfile fallback, the tensor list gives the size, and the model it creates
    answers as the GGUF does."""
    server = await asyncio.to_thread(start_real_ollama, tmp_path / "home", executable=ollama_0_9_executable)
    engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False, parallel=1, num_ctx=512))
    try:
        with caplog.at_level("INFO", logger="sakura_ollama"):
            await engine.load(str(whole_character_gguf))
        assert engine.server_version == "0.9.3"
        assert takes_files(engine.server_version)
        assert "Modelfile" not in caplog.text  # created from `files`: a refusal would have fallen back to one
        # this server lists the tensors (verbose /api/show, since 0.6.1): `size` is reported, as llama.cpp counts it
        llm = llama_cpp.Llama(str(whole_character_gguf), n_ctx=64, verbose=False)
        try:
            size = llama_cpp.llama_model_size(llm._model.model)
        finally:
            llm.close()
        assert engine.model_info is not None and engine.model_info.meta is not None
        assert engine.model_info.meta["size"] == size
        deltas = await collect(engine, PROMPTS[0], greedy(8))
        text, count, _ = llama_cpp_greedy(whole_character_gguf, PROMPTS[0], 8)
        assert "".join(d.text for d in deltas) == text
        assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("length", count)
    finally:
        await engine.close()
        await asyncio.to_thread(server.stop)


async def test_output_counts_and_prompt_tokens_agree_with_llama_cpp(
    real_server: RealOllama, make_engine: EngineFactory, whole_character_gguf: Path
) -> None:
    engine = await make_engine(real_server.url, whole_character_gguf, num_ctx=512)
    llm = llama_cpp.Llama(str(whole_character_gguf), n_ctx=64, verbose=False, vocab_only=True)
    try:
        for prompt in PROMPTS:
            deltas = await collect(engine, prompt, greedy(20))
            text, count, _ = llama_cpp_greedy(whole_character_gguf, prompt, 20)
            assert "".join(d.text for d in deltas) == text
            assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("length", count)
            prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
            assert {d.prompt_tokens for d in deltas} == {prompt_tokens} == {engine.count_tokens(prompt)}
    finally:
        llm.close()


async def test_the_end_token_is_not_counted(
    real_server: RealOllama, make_engine: EngineFactory, ending_gguf: Path
) -> None:
    engine = await make_engine(real_server.url, ending_gguf, num_ctx=512)
    prompt = PROMPTS[0]
    _, count, ended = llama_cpp_greedy(ending_gguf, prompt, 64)
    assert ended
    deltas = await collect(engine, prompt, greedy(64, stop=["<|im_end|>", "<|endoftext|>"]))
    assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("stop", count)


class TestRealOllamaConformance(EngineConformance):
    """The core's conformance kit against the real server (whole-character tokens: see whole_characters)."""

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls, real_server: RealOllama, whole_character_gguf: Path) -> AsyncIterator[OllamaEngine]:
        engine = OllamaEngine(OllamaOptions(ollama_host=real_server.url, spawn=False, parallel=4, num_ctx=512))
        await engine.load(str(whole_character_gguf))
        yield engine
        await engine.close()


async def test_a_disconnect_stops_the_generation_in_ollama(
    ollama_executable: str, tmp_path: Path, whole_character_gguf: Path
) -> None:
    """With one sequence, a request after a closed stream runs at once only if Ollama stopped the first."""
    server = await asyncio.to_thread(start_real_ollama, tmp_path / "home", parallel=1, executable=ollama_executable)
    engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False, parallel=1, num_ctx=4096))
    try:
        await engine.load(str(whole_character_gguf))
        started = time.perf_counter()
        await collect(engine, PROMPTS[0], greedy(1000))
        per_thousand = time.perf_counter() - started
        # 4000 tokens fit the context (this Ollama ends a stream that fills it) and take about 4 * per_thousand
        stream = engine.generate(PROMPTS[1], greedy(4000))
        await anext(stream)
        await stream.aclose()
        assert engine.active_generations == 0
        started = time.perf_counter()
        deltas = await asyncio.wait_for(collect(engine, PROMPTS[2], greedy(8)), 60)
        waited = time.perf_counter() - started
        assert deltas[-1].completion_tokens == 8
        assert waited < 1.5 * per_thousand, f"the next request waited {waited:.1f} s: Ollama kept generating"
    finally:
        await engine.close()
        await asyncio.to_thread(server.stop)


async def test_health_follows_the_ollama_server_it_serves_from(
    ollama_executable: str, tmp_path: Path, whole_character_gguf: Path
) -> None:
    """/health answers 503 within 2 s of Ollama stopping, with the reason, and 200 again once it is back."""
    server = await asyncio.to_thread(start_real_ollama, tmp_path / "home", parallel=1, executable=ollama_executable)
    engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False, parallel=1, num_ctx=512))
    info = await engine.load(str(whole_character_gguf))
    site = TestServer(create_app(engine, PluginRegistry.create(entry_points=False), info), host="127.0.0.1")
    await site.start_server()
    chat = {"messages": [{"role": "user", "content": "やる気"}], "max_tokens": 4, "temperature": 0}

    async def wait_for_health(status: int) -> dict:
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"http://127.0.0.1:{site.port}/health") as response:
                    if response.status == status:
                        return dict(await response.json())
                assert time.perf_counter() - started < 2.0, f"/health did not answer {status} within 2 s"
                await asyncio.sleep(0.05)

    async def chat_status() -> int:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{site.port}/v1/chat/completions", json=chat) as response:
                return response.status

    try:
        await wait_for_health(200)
        assert await chat_status() == 200
        await asyncio.to_thread(server.stop)
        body = await wait_for_health(503)
        assert body["status"] == "engine unavailable"
        assert f"no Ollama server answers at {server.url}" in body["reason"]
        assert await chat_status() == 503
        server = await asyncio.to_thread(
            start_real_ollama, tmp_path / "home", parallel=1, executable=ollama_executable, port=server.port
        )
        assert (await wait_for_health(200))["status"] == "ok"
        assert await chat_status() == 200
    finally:
        await site.close()
        await engine.close()
        await asyncio.to_thread(server.stop)


async def test_spawn_starts_ollama_serve_and_close_stops_it(ollama_on_path: Path, whole_character_gguf: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert not answers(url)
    engine = OllamaEngine(OllamaOptions(ollama_host=f"127.0.0.1:{port}", spawn=True, parallel=2, num_ctx=512))
    try:
        await engine.load(str(whole_character_gguf))
        assert engine.process is not None and engine.process.running
        assert answers(url)
        assert (ollama_on_path / "models" / "manifests").is_dir()  # the child kept to our OLLAMA_MODELS
        deltas = await collect(engine, PROMPTS[0], greedy(4))
        assert deltas[-1].completion_tokens == 4
        process = engine.process
    finally:
        await engine.close()
    assert process.process is not None and process.process.returncode is not None
    assert not answers(url)
