"""The engine watchdog: a generation that makes no progress for the stall timeout turns /health to 503 with the
reason and asks the engine to recover; /health is 200 again once the generation ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from sakura_core.server.settings import ServerSettings
from sakura_core.types import SamplingParams


async def test_a_wedged_generation_turns_health_503_until_it_ends(start_server, recording_engine_class) -> None:
    recovered: list[str] = []
    wedge = asyncio.Event()

    class Wedging(recording_engine_class):  # type: ignore[misc, valid-type]
        async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
            yield "a"
            await wedge.wait()  # never moves again: the Ollama runner wedge
            yield "b"

        async def recover(self, reason: str) -> None:
            recovered.append(reason)

    server = await start_server(settings=ServerSettings(stall_timeout_seconds=0.3), engine_class=Wedging)
    request = asyncio.ensure_future(server.api.post("/v1/completions", {"prompt": "x", "max_tokens": 5}))
    started = time.monotonic()
    while (reply := await server.api.get("/health")).status == 200:
        assert time.monotonic() - started < 3, "/health stayed 200 while a generation made no progress"
        await asyncio.sleep(0.05)
    assert reply.status == 503 and "no progress" in reply.json()["reason"]
    assert len(recovered) == 1 and "no progress" in recovered[0]
    refused = await server.api.post("/v1/completions", {"prompt": "y", "max_tokens": 1})
    assert (refused.status, refused.error["code"]) == (503, "engine_unavailable")
    wedge.set()
    assert (await request).status == 200
    started = time.monotonic()
    while (await server.api.get("/health")).status != 200:
        assert time.monotonic() - started < 3
        await asyncio.sleep(0.05)


async def test_slow_but_moving_generations_keep_health_200(start_server) -> None:
    server = await start_server(settings=ServerSettings(stall_timeout_seconds=0.5), token_delay=0.05, answer_length=40)
    request = asyncio.ensure_future(server.api.post("/v1/completions", {"prompt": "x", "max_tokens": 40}))
    statuses = []
    while not request.done():
        statuses.append((await server.api.get("/health")).status)
        await asyncio.sleep(0.1)
    assert (await request).status == 200 and set(statuses) == {200}
