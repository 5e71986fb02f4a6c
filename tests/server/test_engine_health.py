"""The engine's own word reaches clients: its health drives /health, its failures become 503 or 500 with its reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sakura_echo.scripted import ReferenceEngine

from sakura_core.engine import EngineError, EngineUnavailableError
from sakura_core.types import SamplingParams

StartServer = Callable[..., Awaitable[Any]]
CHAT = {"messages": [{"role": "user", "content": "やる気マンゴスキン"}], "max_tokens": 8}


async def wait_for(condition: Callable[[], bool], within: float) -> float:
    started = time.perf_counter()
    while not condition():
        assert time.perf_counter() - started < within, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


class FlakyBackend(ReferenceEngine):
    """An engine whose backend can be taken down and brought back by the test."""

    down: str | None = None
    health_checks = 0

    async def health(self) -> str | None:
        self.health_checks += 1
        return self.down


async def test_health_follows_the_engine_and_requests_get_503_while_it_is_down(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sakura_core.server.generation.health")
    server = await start_server(engine_class=FlakyBackend)
    engine = server.engine
    assert isinstance(engine, FlakyBackend)
    assert (await server.api.get("/health")).status == 200

    engine.down = "backend at 127.0.0.1:1 does not answer"
    checks = engine.health_checks

    async def health_status() -> int:
        return (await server.api.get("/health")).status

    took = 0.0
    started = time.perf_counter()
    while await health_status() != 503:
        took = time.perf_counter() - started
        assert took < 2.0, "/health did not turn 503 within 2 s"
        await asyncio.sleep(0.05)
    reply = await server.api.get("/health")
    assert reply.json() == {"status": "engine unavailable", "reason": "backend at 127.0.0.1:1 does not answer"}
    chat = await server.api.post("/v1/chat/completions", CHAT)
    assert chat.status == 503
    assert chat.error["code"] == "engine_unavailable"
    assert "backend at 127.0.0.1:1 does not answer" in chat.error["message"]
    assert chat.headers["Retry-After"]

    await wait_for(lambda: engine.health_checks >= checks + 3, within=5)  # still polled while down
    engine.down = None
    started = time.perf_counter()
    while await health_status() != 200:
        assert time.perf_counter() - started < 2.0, "/health did not recover within 2 s"
        await asyncio.sleep(0.05)
    assert (await server.api.post("/v1/chat/completions", CHAT)).status == 200
    changes = [r.getMessage() for r in caplog.records if r.name == "sakura_core.server.generation.health"]
    assert changes == [
        "the engine cannot serve: backend at 127.0.0.1:1 does not answer; /health answers 503 until it recovers",
        "the engine serves again",
    ]


async def test_an_engine_without_health_is_never_polled(start_server: StartServer) -> None:
    server = await start_server()
    await asyncio.sleep(1.2)
    assert server.state.model.runner.problem is None
    assert (await server.api.get("/health")).status == 200


class Failing(ReferenceEngine):
    """Fails the way the test asks: while counting or while generating, temporarily or not."""

    count_error: Exception | None = None
    generate_error: Exception | None = None

    def count_tokens(self, text: str) -> int:
        if self.count_error is not None:
            raise self.count_error
        return super().count_tokens(text)

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        produced = 0
        async for token in super().generate(prompt, params):
            produced += 1
            if produced == 3 and self.generate_error is not None:
                raise self.generate_error
            yield token


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (EngineUnavailableError("tokenizer service down"), 503, "engine_unavailable", "tokenizer service down"),
        (EngineError("cannot tokenize this"), 500, "engine_error", "cannot tokenize this"),
        (ValueError("bug in the engine"), 500, "engine_error", "ValueError: bug in the engine"),
    ],
)
async def test_a_count_that_fails_answers_with_the_engines_reason(
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    code: str,
    message: str,
) -> None:
    server = await start_server(engine_class=Failing)
    server.engine.count_error = error  # type: ignore[attr-defined]
    reply = await server.api.post("/v1/chat/completions", CHAT)
    assert reply.status == status
    assert reply.error["code"] == code
    assert reply.error["message"].startswith("the engine")
    assert message in reply.error["message"]
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]
    # an EngineError is the engine's own word (one line); anything else is a bug worth its traceback
    assert bool(tracebacks) is (not isinstance(error, EngineError))
    server.engine.count_error = None  # type: ignore[attr-defined]
    assert (await server.api.post("/v1/chat/completions", CHAT)).status == 200


async def test_a_temporary_failure_mid_stream_ends_with_an_engine_unavailable_event(start_server: StartServer) -> None:
    server = await start_server(engine_class=Failing)
    server.engine.generate_error = EngineUnavailableError("lost the backend")  # type: ignore[attr-defined]
    reply = await server.api.post("/v1/chat/completions", {**CHAT, "stream": True})
    events = reply.sse().json()
    assert events[-1]["error"]["code"] == "engine_unavailable"
    assert "lost the backend" in events[-1]["error"]["message"]
    plain = await server.api.post("/v1/chat/completions", CHAT)
    assert (plain.status, plain.error["code"]) == (503, "engine_unavailable")
    server.engine.generate_error = EngineError("broken for good")  # type: ignore[attr-defined]
    plain = await server.api.post("/v1/chat/completions", CHAT)
    assert (plain.status, plain.error["code"]) == (500, "engine_error")
