"""End to end: ``sakura run --engine vllm`` as a subprocess, called with the ``openai`` client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest
from sakura_vllm.tiny_model import build_tiny_model
from tokenizers import Tokenizer

from sakura_core.testing.ports import free_port

START_TIMEOUT = 300.0


@dataclass
class RunningServer:
    """A ``sakura run`` process, its address and its log."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    model: Path
    saw_loading: bool

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``sakura run --engine vllm`` on a model whose config.json and name say nothing of its version."""
    model = build_tiny_model(
        tmp_path_factory.mktemp("e2e") / "tiny-random-qwen2", sakura_name=None, sakura_version=None, sakura_quant=None
    )
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "sakura.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    command = [
        str(Path(sys.executable).with_name("sakura")), "run", "--engine", "vllm", "--model", str(model),
        "--listen", f"127.0.0.1:{port}", "--enforce-eager", "--dtype", "float32", "-c", "1024", "-np", "4",
        "--vllm-arg", "seed=0",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    statuses = []
    deadline = time.monotonic() + START_TIMEOUT
    while (status := health(url)) != 200:
        statuses.append(status)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"sakura run did not start:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.5)
    running = RunningServer(process, url, log, model, saw_loading=503 in statuses)
    yield running
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-114514", timeout=120)


def test_health_answers_while_vllm_loads(server: RunningServer) -> None:
    # the event loop stays free while vLLM starts: /health said 503 "loading model" before 200
    assert server.saw_loading


def test_model_without_identity_serves_with_a_warning(server: RunningServer, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [model.id for model in models.data] == ["tiny-random-qwen2"]
    assert "cannot tell the Sakura version" in server.log_text()


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="sukinishiro",
        messages=[
            {"role": "system", "content": "你是一个轻小说翻译模型"},
            {"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"},
        ],
        max_tokens=16,
        temperature=0.1,
        top_p=0.3,
        frequency_penalty=0.0,
        seed=1,
    )
    assert reply.model == "tiny-random-qwen2"
    choice = reply.choices[0]
    assert isinstance(choice.message.content, str)
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 16
    assert (choice.finish_reason == "length") == (reply.usage.completion_tokens == 16)


def test_streamed_chat_joins_to_the_same_greedy_answer(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "将下面的日文文本翻译成中文：彼女は窓の外を眺めながら"}]
    whole = client.chat.completions.create(model="", messages=messages, max_tokens=20, temperature=0)
    stream = client.chat.completions.create(
        model="", messages=messages, max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_raw_completion(server: RunningServer, client: openai.OpenAI) -> None:
    prompt = "<|im_start|>user\n先輩<|im_end|>\n<|im_start|>assistant\n"
    reply = client.completions.create(model="", prompt=prompt, max_tokens=8, temperature=0)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(Tokenizer.from_file(str(server.model / "tokenizer.json")).encode(prompt))
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_disconnect_stops_the_generation_and_the_server_keeps_serving(
    server: RunningServer, client: openai.OpenAI
) -> None:
    # find a chat the random model keeps answering, then walk away from its stream
    messages = None
    for line in ("俺の名前は佐藤悠人。", "彼女は窓の外を眺めながら", "魔法学園の入学式", "先輩", "Hello"):
        candidate = [{"role": "user", "content": line}]
        probe = client.chat.completions.create(model="", messages=candidate, max_tokens=64, temperature=0)
        if probe.choices[0].finish_reason == "length":
            messages = candidate
            break
    assert messages is not None, "every chat ends early"
    stream = client.chat.completions.create(model="", messages=messages, max_tokens=900, temperature=0, stream=True)
    for received, _ in enumerate(stream):
        if received == 5:
            break
    assert server.metric("llamacpp:requests_processing") == 1
    stream.close()
    deadline = time.monotonic() + 10
    while server.metric("llamacpp:requests_processing") != 0:
        assert time.monotonic() < deadline, "the generation kept running after the client left"
        time.sleep(0.05)
    assert server.metric('sakura_generations_total{outcome="cancelled"}') >= 1
    again = client.chat.completions.create(model="", messages=messages, max_tokens=4, temperature=0)
    assert again.usage is not None and again.usage.completion_tokens == 4


def test_sigterm_stops_the_server_and_vllms_processes(server: RunningServer) -> None:
    children = psutil.Process(server.process.pid).children(recursive=True)
    assert children, "vLLM runs its engine in child processes"
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=120) == 0, server.log_text()[-3000:]
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"vLLM processes left behind: {alive}"
