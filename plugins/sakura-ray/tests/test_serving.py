"""sakura's own server in front of two llama.cpp replicas: whole-cluster slots, clients spread over the replicas,
a disconnect that frees the slot on the replica, and a replica killed under load."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sakura_ray.deployment import DEPLOYMENT_NAME
from sakura_ray.engine import RayEngine
from sakura_ray.testing import TRANSLATION_PROMPT as PROMPT
from sakura_ray.testing import kill_actor, replica_actor, running_replicas

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app

#: Seconds a replica may take to report a cancelled generation's slot free.
RELEASE_SECONDS = 2.0
#: Seconds Ray Serve may take to replace a killed replica (it loads the model again).
REPLACE_SECONDS = 120.0


@pytest.fixture(scope="module")
async def front(replicas: RayEngine) -> AsyncIterator[str]:
    """sakura's server over the replicas, on a loopback port; its base URL."""
    assert replicas.model_info is not None
    app = create_app(replicas, PluginRegistry.create(entry_points=False), replicas.model_info)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@dataclass
class Stream:
    """What one streamed completion delivered."""

    texts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    done: bool = False


async def stream_completion(session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int) -> Stream:
    """One streamed /v1/completions request, read to its end."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    result = Stream()
    async with session.post(url + "/v1/completions", json=body) as response:
        assert response.status == 200, await response.text()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                result.done = True
                continue
            event = json.loads(line[len("data: ") :])
            if "error" in event:
                result.error = event["error"]
                continue
            choice = event["choices"][0]
            result.texts.append(choice["text"])
            result.finish_reason = choice["finish_reason"] or result.finish_reason
    return result


def prompts(count: int) -> list[str]:
    """``count`` different prompts."""
    return [PROMPT.replace("やる気", f"やる気{index}") for index in range(count)]


async def test_the_front_admits_the_summed_parallelism_of_the_replicas(front: str, replicas: RayEngine) -> None:
    assert replicas.replica_parallelism == 2 and replicas.parallelism == 4
    async with aiohttp.ClientSession() as session:
        async with session.get(front + "/health") as response:
            health = await response.json()
        async with session.get(front + "/slots") as response:
            slots = await response.json()
    assert health == {"status": "ok", "slots_idle": 4, "slots_processing": 0}
    assert len(slots) == 4


async def test_concurrent_clients_are_spread_over_both_replicas(front: str, replicas: RayEngine) -> None:
    before = Counter(replicas.served_by)
    served_before = {state.replica_id: state.served for state in await replicas.replica_states()}
    assert len(served_before) == 2

    async def client(index: int, prompt: str) -> Stream:
        await asyncio.sleep(0.05 * index)  # clients arrive one after the other, as translators' workers do
        async with aiohttp.ClientSession() as session:
            return await stream_completion(session, front, prompt, max_tokens=48)

    results = await asyncio.gather(*(client(index, prompt) for index, prompt in enumerate(prompts(8))))
    for result in results:
        assert result.error is None and result.done and result.finish_reason in ("stop", "length")
    by_front = Counter(replicas.served_by)
    by_front.subtract(before)
    assert sorted(by_front) == sorted(served_before) and all(count > 0 for count in by_front.values()), by_front
    assert sum(by_front.values()) == 8
    served_after = {state.replica_id: state.served for state in await replicas.replica_states()}
    assert {rid: served_after[rid] - served_before[rid] for rid in served_before} == dict(by_front)


async def test_a_disconnect_frees_the_slot_on_its_replica(front: str, replicas: RayEngine) -> None:
    before = Counter(replicas.served_by)
    # long enough to be still running on the replica when the client leaves: Ray streams ahead of the reader
    body = {"prompt": PROMPT, "max_tokens": 4000, "temperature": 0, "stream": True}
    async with aiohttp.ClientSession() as session:
        response = await session.post(front + "/v1/completions", json=body)
        events = 0
        async for raw in response.content:
            events += raw.startswith(b"data: ")
            if events == 3:
                break
        [replica_id] = [rid for rid, count in replicas.served_by.items() if count > before[rid]]
        states = {state.replica_id: state for state in await replicas.replica_states()}
        assert states[replica_id].active == 1, states
        response.close()  # the client goes away mid-stream
        closed = time.monotonic()
        while True:
            states = {state.replica_id: state for state in await replicas.replica_states()}
            if states[replica_id].active == 0:
                break
            assert time.monotonic() - closed < RELEASE_SECONDS, f"the replica still runs the generation: {states}"
            await asyncio.sleep(0.05)
    assert replicas.active_generations == 0


async def test_a_killed_replica_ends_its_streams_with_503_and_the_rest_is_served(
    front: str, replicas: RayEngine
) -> None:
    # 5 times the slots: while the first generations run, the rest wait in the front's queue
    requests = prompts(5 * replicas.parallelism)
    app = replicas.app_name
    actors = {
        state.replica_id: await asyncio.to_thread(replica_actor, app, DEPLOYMENT_NAME, state.replica_id)
        for state in await replicas.replica_states()
    }  # looked up now: the kill must land while the victim's generations still run
    async with aiohttp.ClientSession() as session:

        async def client(index: int, prompt: str) -> Stream:
            await asyncio.sleep(0.02 * index)
            return await stream_completion(session, front, prompt, max_tokens=400)

        tasks = [asyncio.create_task(client(index, prompt)) for index, prompt in enumerate(requests)]
        deadline = time.monotonic() + 60
        while True:  # a replica with generations under way (their first tokens out) is the victim
            states = await replicas.replica_states()
            busy = [state for state in states if state.active > 0]
            if busy and replicas.active_generations >= replicas.parallelism:
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.02)
        victim = busy[0]
        await asyncio.to_thread(kill_actor, actors[victim.replica_id])
        results = await asyncio.gather(*tasks)

        failed = [result for result in results if result.error is not None]
        for result in results:
            assert result.done, "every stream ends with [DONE]"
            if result.error is None:
                assert result.finish_reason in ("stop", "length")
        # only what ran on the victim when it died may fail: what ran in its slots, and what had finished there
        # but whose last events were still on their way to the front (Ray streams ahead of the reader, so the
        # replica frees a slot, and starts the next generation in it, before the front has read the end); a
        # generation that had streamed nothing yet goes to the other replica
        most = 2 * victim.parallelism
        assert 1 <= len(failed) <= most, [r.error for r in failed]
        for result in failed:
            assert result.error is not None and result.error["code"] == "engine_unavailable"
            assert "replica" in result.error["message"] and result.texts, "only started generations may fail"
        assert len(results) - len(failed) >= len(requests) - most

        # service goes on, and Ray Serve replaces the replica
        assert (await stream_completion(session, front, PROMPT, max_tokens=8)).finish_reason == "length"
        deadline = time.monotonic() + REPLACE_SECONDS
        while True:
            running = await asyncio.to_thread(running_replicas, replicas.app_name, DEPLOYMENT_NAME)
            ids = {state.replica_id for state in await replicas.replica_states()}
            if running == 2 and len(ids) == 2 and victim.replica_id not in ids:
                break
            assert time.monotonic() < deadline, f"the replica was not replaced: {running} running, {ids}"
            await asyncio.sleep(0.5)
