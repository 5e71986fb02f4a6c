"""The Sakura API server over the vllm engine, in-process: a client that disconnects aborts its vLLM request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sakura_vllm.engine import VllmEngine

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app

LINES = (
    "彼女は窓の外を眺めながら",
    "俺の名前は佐藤悠人。",
    "魔法学園の入学式",
    "ありがとう。",
    "先輩",
    "今日もいい天気ですね",
)


@dataclass
class Served:
    """A running server over the session's vllm engine."""

    url: str
    session: aiohttp.ClientSession


@pytest.fixture(scope="module")
async def served(vllm_engine: VllmEngine) -> AsyncIterator[Served]:
    assert vllm_engine.model_info is not None
    app = create_app(vllm_engine, PluginRegistry.create(entry_points=False), vllm_engine.model_info)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()  # with handler_cancellation, as `sakura run` serves
    async with aiohttp.ClientSession() as session:
        yield Served(f"http://127.0.0.1:{server.port}", session)
    await server.close()


def chat(line: str, **extra: object) -> dict[str, object]:
    return {"model": "", "messages": [{"role": "user", "content": line}], "temperature": 0, **extra}


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_chat_completion_reports_vllm_counts(served: Served, vllm_engine: VllmEngine) -> None:
    async with served.session.post(served.url + "/v1/chat/completions", json=chat(LINES[0], max_tokens=12)) as reply:
        assert reply.status == 200
        body = await reply.json()
    assert body["model"] == vllm_engine.model_info.id
    choice = body["choices"][0]
    usage = body["usage"]
    assert isinstance(choice["message"]["content"], str)
    assert usage["completion_tokens"] <= 12
    assert (choice["finish_reason"] == "length") == (usage["completion_tokens"] == 12)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 20


async def test_disconnecting_client_aborts_the_vllm_request(served: Served, vllm_engine: VllmEngine) -> None:
    engine = vllm_engine
    # a chat the random model keeps answering (found out, not assumed)
    line = None
    for candidate in LINES:
        async with served.session.post(served.url + "/v1/chat/completions", json=chat(candidate, max_tokens=64)) as r:
            if (await r.json())["choices"][0]["finish_reason"] == "length":
                line = candidate
                break
    assert line is not None, "every chat ends early"

    async with served.session.post(
        served.url + "/v1/chat/completions", json=chat(line, max_tokens=800, stream=True)
    ) as reply:
        assert reply.status == 200
        events = 0
        while events < 4:
            event = await reply.content.readuntil(b"\n\n")
            if event.startswith(b"data: "):
                events += 1
        assert engine.active_generations == 1  # vLLM's own count of unfinished requests
        await eventually(lambda: engine.scheduler.running == 1)
        reply.close()  # the client goes away mid-answer

    await eventually(lambda: engine.active_generations == 0)
    # vLLM's engine process runs nothing of it any more, and the server keeps serving
    engine.scheduler.mark()
    async with served.session.post(served.url + "/v1/chat/completions", json=chat(line, max_tokens=4)) as reply:
        assert reply.status == 200
        assert (await reply.json())["usage"]["completion_tokens"] == 4
    assert engine.scheduler.peak_running == 1
    async with served.session.get(served.url + "/health") as health:
        assert (await health.json())["status"] == "ok"


async def test_stream_is_one_choice_per_chunk_and_ends_with_done(served: Served) -> None:
    async with served.session.post(
        served.url + "/v1/chat/completions",
        json=chat(LINES[1], max_tokens=10, stream=True, stream_options={"include_usage": True}),
    ) as reply:
        raw = (await reply.read()).decode()
    events = [block.removeprefix("data: ") for block in raw.split("\n\n") if block.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    usage = chunks[-1]["usage"]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1
    assert (finals[0]["choices"][0]["finish_reason"] == "length") == (usage["completion_tokens"] == 10)
