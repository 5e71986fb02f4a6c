"""Admission up to the engine's parallelism, a bounded queue, keep-alive pings, and cancellation on disconnect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from sakura_core import hookimpl
from sakura_core.server.settings import ServerSettings

CHAT = {"messages": [{"role": "user", "content": "こんにちは"}]}
#: A generation that runs for about a minute unless it is cancelled (5000 tokens, 0.01 s each) ...
LONG = {"token_delay": 0.01, "answer_length": 5000}
#: ... so that one that ends within this many seconds was cancelled, not finished, however busy the machine is.
CANCELLED_WITHIN = 10.0


async def wait_for(condition: Callable[[], bool], within: float, step: float = 0.01) -> float:
    """Poll ``condition`` until true; return the seconds it took (fails after ``within``)."""
    started = time.perf_counter()
    while not condition():
        assert time.perf_counter() - started < within, "condition not reached in time"
        await asyncio.sleep(step)
    return time.perf_counter() - started


class FinishObserver:
    """A plugin that records how every generation ended (through the after_generate hook)."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    @hookimpl
    def after_generate(self, request, result, model) -> None:
        self.finished.append(result.finish_reason)


async def test_parallelism_queue_and_queue_limit(start_server) -> None:
    server = await start_server(parallel=4, token_delay=0.02, answer_length=30, settings=ServerSettings(max_queue=1))
    engine, scheduler = server.engine, server.state.scheduler
    body = {**CHAT, "temperature": 0}
    running = [asyncio.create_task(server.api.post("/v1/chat/completions", body)) for _ in range(4)]
    await wait_for(lambda: engine.active == 4, within=5)
    fifth = asyncio.create_task(server.api.post("/v1/chat/completions", body))
    await wait_for(lambda: scheduler.waiting == 1, within=5)
    assert engine.active == 4  # the fifth waits outside the engine
    health = await server.api.get("/health")
    assert health.json() == {"status": "ok", "slots_idle": 0, "slots_processing": 4}
    slots = (await server.api.get("/slots")).json()
    assert all(slot["is_processing"] for slot in slots)
    metrics = (await server.api.get("/metrics")).text
    assert "llamacpp:requests_processing 4" in metrics and "llamacpp:requests_deferred 1" in metrics
    refused = await server.api.post("/v1/chat/completions", body)
    assert refused.status == 503
    assert refused.error["code"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1
    replies = await asyncio.gather(*running, fifth)
    assert [reply.status for reply in replies] == [200] * 5
    assert all(reply.json()["usage"]["completion_tokens"] == 30 for reply in replies)
    assert engine.peak_active == 4
    assert engine.started == 5
    assert scheduler.active == 0 and scheduler.waiting == 0


async def test_no_queue_means_503_when_every_slot_is_busy(start_server) -> None:
    server = await start_server(parallel=1, token_delay=0.02, answer_length=20, settings=ServerSettings(max_queue=0))
    first = asyncio.create_task(server.api.post("/v1/chat/completions", CHAT))
    await wait_for(lambda: server.engine.active == 1, within=5)
    assert (await server.api.post("/v1/completions", {"prompt": "x"})).status == 503
    assert (await first).status == 200


async def test_requests_run_together_not_one_after_another(start_server) -> None:
    server = await start_server(parallel=4, token_delay=0.02, answer_length=25)
    replies = await asyncio.gather(*(server.api.post("/v1/chat/completions", CHAT) for _ in range(4)))
    assert all(reply.status == 200 for reply in replies)
    # all four were in the engine at the same time (one after another, the peak would be 1); no wall-clock bound,
    # which the machine's load would decide
    assert server.engine.peak_active == 4


async def test_twenty_streams_cut_midway_leave_no_generation_running(start_server) -> None:
    observer = FinishObserver()
    server = await start_server(parallel=8, plugins=(("observer", observer),), **LONG)
    engine, scheduler = server.engine, server.state.scheduler
    session = aiohttp.ClientSession()
    responses = []
    for _ in range(20):
        response = await session.post(server.url + "/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status == 200
        responses.append(response)
    await wait_for(lambda: engine.active == 8 and scheduler.waiting == 12, within=5)
    # read into each running stream (past the role chunk) before cutting it
    for response in responses:
        await response.content.readuntil(b"\n\n")
    for response in responses[:8]:
        await response.content.readuntil(b"\n\n")
        await response.content.readuntil(b"\n\n")
    for response in responses:
        response.close()
    await wait_for(lambda: engine.active_generations == 0 and scheduler.active == 0, within=CANCELLED_WITHIN)
    await wait_for(lambda: scheduler.waiting == 0, within=CANCELLED_WITHIN)
    assert engine.peak_active == 8
    await wait_for(lambda: len(observer.finished) == engine.started, within=CANCELLED_WITHIN)
    # every generation that reached the engine was cancelled, none finished (queued ones may get a slot
    # for an instant while the others are being cut)
    assert engine.started >= 8
    assert set(observer.finished) == {"cancelled"}
    await session.close()
    # the server still answers, and the slots are free
    assert (await server.api.get("/health")).json()["slots_idle"] == 8
    assert (await server.api.post("/v1/chat/completions", {**CHAT, "max_tokens": 3})).status == 200


async def test_non_stream_client_disconnect_cancels_generation(start_server) -> None:
    server = await start_server(parallel=2, **LONG)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3))
    try:
        await session.post(server.url + "/v1/chat/completions", json=CHAT)
    except TimeoutError:
        pass
    else:
        raise AssertionError("the request should have timed out on the client")
    await session.close()
    # the slot is freed once the handler has seen the engine's stream closed (the close runs as a task of its own)
    await wait_for(
        lambda: server.engine.active_generations == 0 and server.state.scheduler.active == 0, within=CANCELLED_WITHIN
    )
    metrics = (await server.api.get("/metrics")).text
    assert 'sakura_generations_total{outcome="cancelled"} 1' in metrics


async def test_queued_stream_gets_pings_then_its_answer(start_server, expected_answer) -> None:
    server = await start_server(
        parallel=1, token_delay=0.02, answer_length=20, settings=ServerSettings(sse_ping_seconds=0.05)
    )
    first = asyncio.create_task(server.api.post("/v1/chat/completions", CHAT))
    await wait_for(lambda: server.engine.active == 1, within=5)
    body = {"messages": [{"role": "user", "content": "待つ"}], "stream": True, "temperature": 0}
    reply = await server.api.post("/v1/chat/completions", body)
    events = reply.sse()
    kinds = [kind for kind, _ in events.events]
    first_content = next(i for i, (k, v) in enumerate(events.events) if k == "data" and '"content":"待' in v)
    assert "comment" in kinds[:first_content], "no ping while waiting in the queue"
    assert all(text == "ping" for text in events.comments)
    chunks = events.json()
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected_answer("待つ", 20)
    assert (await first).status == 200


async def test_disconnect_while_queued_gives_the_place_up(start_server) -> None:
    server = await start_server(parallel=1, **LONG)
    scheduler = server.state.scheduler
    session = aiohttp.ClientSession()
    url = server.url + "/v1/chat/completions"
    first = await session.post(url, json={**CHAT, "stream": True})  # holds the only slot for a minute
    await wait_for(lambda: server.engine.active == 1, within=5)
    queued = await session.post(url, json={**CHAT, "stream": True})
    await wait_for(lambda: scheduler.waiting == 1, within=5)
    queued.close()
    await wait_for(lambda: scheduler.waiting == 0, within=CANCELLED_WITHIN)
    # the place was given up while the slot was still taken: the request never reached the engine
    assert server.engine.active == 1 and server.engine.started == 1
    first.close()
    await wait_for(lambda: server.engine.active_generations == 0, within=CANCELLED_WITHIN)
    await session.close()
    assert server.engine.started == 1
