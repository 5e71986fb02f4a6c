"""End to end: ``sakura run --engine llamacpp`` as a subprocess, driven over HTTP by the openai client and others."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sakura_core.testing.metrics import metric_value
from sakura_core.testing.ports import free_port

SAKURA = [sys.executable, "-c", "from sakura_core.cli import main; main()"]
PROMPT = "<|im_start|>user\n将下面的日文文本翻译成中文：やる気マンゴスキン<|im_end|>\n<|im_start|>assistant\n"
MODEL_ID = "sakura-tiny-qwen2-v1.0-f32"
TIMEOUT = 60.0  # generous: the machine running the tests may be busy
MESSAGES: list[Any] = [{"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"}]


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sakura run`` serving the tiny model on a free loopback port; its base URL once /health says ok."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "sakura.log"
    args = ["run", "--engine", "llamacpp", "--model", str(tiny_gguf), "--listen", f"127.0.0.1:{port}", "--no-auth"]
    with log.open("w") as log_file:
        process = subprocess.Popen([*SAKURA, *args, "-np", "4", "--n-ctx", "4096"], stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"sakura exited early:\n{log.read_text()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"sakura did not become healthy:\n{log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="sk-114514", max_retries=0, timeout=TIMEOUT)


def test_models_report_identity_and_true_meta(client: openai.OpenAI, server: str) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_ID]
    raw = httpx.get(server + "/v1/models", timeout=TIMEOUT).json()["data"][0]
    assert raw["model_name"] == "sakura-tiny-qwen2"
    assert raw["model_version"] == "1.0"
    assert raw["model_quant"] == "f32"
    assert raw["meta"]["n_embd"] == 64
    assert raw["meta"]["n_ctx_train"] == 4096
    assert raw["meta"]["vocab_type"] == 2
    slots = httpx.get(server + "/slots", timeout=TIMEOUT).json()
    assert len(slots) == 4
    assert all(slot["n_ctx"] == 4096 for slot in slots)


def test_chat_completion_stream_and_not(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, max_tokens=12, temperature=0)
    assert whole.model == MODEL_ID
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 12
    content = whole.choices[0].message.content
    assert isinstance(content, str) and content
    chunks = list(
        client.chat.completions.create(
            model="",
            messages=MESSAGES,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert {c.model for c in chunks} == {MODEL_ID}


def test_raw_completion_routes_agree(client: openai.OpenAI, server: str) -> None:
    completion = client.completions.create(model="x", prompt=PROMPT, max_tokens=10, temperature=0)
    text = completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens == 10
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="x", prompt=PROMPT, max_tokens=10, temperature=0, stream=True)
        if c.choices
    )
    native_body = {"prompt": PROMPT, "n_predict": 10, "temperature": 0}
    native = httpx.post(server + "/completion", json=native_body, timeout=TIMEOUT).json()
    legacy_body = {"prompt": PROMPT, "max_new_tokens": 10, "do_sample": False}
    legacy = httpx.post(server + "/api/v1/generate", json=legacy_body, timeout=TIMEOUT).json()
    assert streamed == text
    assert native["content"] == text
    assert legacy["results"][0]["text"] == text
    assert legacy["results"][0]["new_token"] == 10
    with httpx.stream("POST", server + "/api/v1/stream/generate", json=legacy_body, timeout=TIMEOUT) as events:
        lines = [line for line in events.iter_lines() if line.startswith("data: ")]
    assert lines, "the legacy stream sent no events"


async def test_concurrent_streams_match_solo_runs(server: str) -> None:
    client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=TIMEOUT)
    texts = ["やる気マンゴスキン", "雨の音で目が覚めた。", "ありがとう。", "俺の名前は佐藤悠人。"]

    async def translate(text: str) -> str:
        stream = await client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": text}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    solo = [await translate(t) for t in texts]
    together = await asyncio.gather(*(translate(t) for t in texts))
    assert list(together) == solo
    assert len(set(solo)) == 4
    await client.close()


def test_a_repeated_prefix_comes_from_the_cache_and_slots_and_metrics_say_so(
    client: openai.OpenAI, server: str
) -> None:
    context = "\n".join(["彼女は窓の外を眺めながら、小さくため息をついた。", "「おはようございます、先輩。」"])
    messages: list[Any] = [
        {"role": "system", "content": "你是一个轻小说翻译模型。根据以下术语表：先輩->前辈"},
        {"role": "user", "content": f"上文：{context}\n将下面的日文文本翻译成中文：俺の名前は佐藤悠人。"},
    ]
    cached_before = metric_value(
        httpx.get(server + "/metrics", timeout=TIMEOUT).text, "llamacpp:prompt_tokens_cached_total"
    )
    first = client.chat.completions.create(model="x", messages=messages, max_tokens=8, temperature=0)
    again = client.chat.completions.create(model="x", messages=messages, max_tokens=8, temperature=0)
    assert first.usage is not None and again.usage is not None
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.usage.prompt_tokens_details is not None
    prompt_tokens = again.usage.prompt_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == prompt_tokens - 1  # all but the last prompt token
    slots = httpx.get(server + "/slots", timeout=TIMEOUT).json()
    holding = [slot for slot in slots if slot["n_prompt_tokens_cache"] == prompt_tokens - 1]
    assert len(holding) == 1  # the slot that served both, holding the prompt and the answer's tokens
    assert prompt_tokens < holding[0]["tokens_cached"] <= prompt_tokens + 8
    metrics = httpx.get(server + "/metrics", timeout=TIMEOUT).text
    assert metric_value(metrics, "llamacpp:prompt_tokens_cached_total") >= cached_before + prompt_tokens - 1


async def test_client_disconnect_cancels_the_generation(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT) as http:
        before = (await http.get("/metrics")).text
        body = {"model": "x", "prompt": PROMPT, "max_tokens": 4000, "temperature": 0, "stream": True}
        async with http.stream("POST", "/v1/completions", json=body) as response:
            received = 0
            async for line in response.aiter_lines():
                received += line.startswith("data: ")
                if received == 3:
                    break
        disconnected = time.monotonic()
        while (await http.get("/health")).json()["slots_processing"] != 0:
            assert time.monotonic() - disconnected < TIMEOUT, "the slot was not freed after the client went away"
            await asyncio.sleep(0.02)
        after = (await http.get("/metrics")).text
    # the slot was freed by the cancellation, before the generation's end: not a wall-clock bound, which the
    # machine's load would decide
    cancelled = 'sakura_generations_total{outcome="cancelled"}'
    assert metric_value(after, cancelled) == metric_value(before, cancelled, default=0) + 1
    tokens = "sakura_completion_tokens_total"
    assert 3 <= metric_value(after, tokens) - metric_value(before, tokens) < 4000


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAKURA, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_cli_missing_model_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    done = run_cli("run", "--model", str(tmp_path / "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"), "--port", str(free_port()))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "model file not found" in errors[0]
    assert "Traceback" not in done.stderr


def test_cli_repository_without_network_is_one_line(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = run_cli("run", "--model", "SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF", "--port", str(free_port()), env=env)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "cannot download SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF" in errors[0]
    assert "--model ./FILE.gguf" in errors[0]
