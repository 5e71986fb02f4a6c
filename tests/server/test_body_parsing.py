"""Large JSON bodies are parsed (and validated, and freed) off the event loop: a body of hundreds of thousands of
tiny values in an ignored field does not stall the server. Loopback only, a few megabytes."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

import pytest
from pydantic import ValidationError

from sakura_core.server.http.errors import APIError
from sakura_core.server.http.httpio import INLINE_PARSE_BYTES, PARSE_SWITCH_INTERVAL, _parse_and_build, parse
from sakura_core.server.routes.schemas.openai import CompletionRequest
from sakura_core.testing.rawhttp import RawReply, exchange, post_request

#: Longest the event loop may go without running a 2 ms timer while the bodies are handled, in seconds.
MAX_LOOP_LAG = 0.1


def many_keys_body(keys: int) -> bytes:
    ignored = {f"k{i}": i for i in range(keys)}
    return json.dumps({"prompt": "こんにちは", "max_tokens": 1, "ignored": ignored}).encode()


async def loop_lag(stop: threading.Event) -> float:
    """The longest a 2 ms sleep overran until ``stop`` is set."""
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.002)
        worst = max(worst, time.perf_counter() - started - 0.002)
    return worst


async def test_bodies_of_many_keys_do_not_stall_the_event_loop(start_server) -> None:
    server = await start_server(n_ctx=16384)  # a body limit of 12 MiB
    body = many_keys_body(400_000)  # about 7 MB; parsed inline this takes the loop about 200 ms
    payload = post_request(server.port, "/v1/completions", body)
    stop = threading.Event()
    lag = asyncio.ensure_future(loop_lag(stop))
    await asyncio.sleep(0.05)

    def send_all() -> list[bytes]:
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(exchange(server.port, payload, 30))) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    try:
        replies = await asyncio.to_thread(send_all)
    finally:
        stop.set()
    worst = await lag
    assert [RawReply.parse(r).status for r in replies] == [200, 200]
    assert worst < MAX_LOOP_LAG, f"the event loop stalled for {worst * 1000:.0f} ms"


async def test_small_and_large_bodies_are_answered_alike(api) -> None:
    small = {"prompt": "こんにちは", "max_tokens": 3, "temperature": 0}
    large = {**small, "padding": "x" * (INLINE_PARSE_BYTES * 2)}
    a, b = await api.post("/v1/completions", small), await api.post("/v1/completions", large)
    assert a.status == b.status == 200
    assert a.json()["choices"][0]["text"] == b.json()["choices"][0]["text"]
    bad = await api.post("/v1/completions", {**large, "temperature": "hot"})
    assert bad.status == 400 and bad.error["param"] == "temperature"
    broken = await api.post("/v1/completions", data=b'{"prompt": "' + b"x" * (INLINE_PARSE_BYTES * 2) + b'"')
    assert broken.status == 400 and broken.error["code"] == "invalid_json"


def references_from(error: BaseException) -> list[object]:
    """Everything a raised error keeps alive that could be a parsed body: its chain, its frames' locals, the
    arguments of the errors in its chain."""
    found: list[object] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found.extend(current.args)
        if isinstance(current, ValidationError):
            found.extend(detail.get("input") for detail in current.errors())
        trace = current.__traceback__
        while trace is not None:
            found.extend(trace.tb_frame.f_locals.values())
            trace = trace.tb_next
        pending += [current.__context__, current.__cause__]
    return found


def test_a_refused_many_keys_body_is_freed_in_the_parsing_thread_not_by_the_loop() -> None:
    """The error that goes back to the event loop holds no reference to the parsed body, so its hundreds of
    thousands of values are freed in the thread that parsed them."""
    body = json.dumps({"max_tokens": "many", "ignored": {f"k{i}": i for i in range(30_000)}}).encode()
    with pytest.raises(APIError) as refused:
        _parse_and_build(body, lambda data: parse(CompletionRequest, data))
    assert refused.value.status == 400
    kept = [value for value in references_from(refused.value) if isinstance(value, dict) and len(value) > 1000]
    assert kept == []


def test_a_many_keys_body_is_parsed_with_a_short_gil_switch_interval() -> None:
    """While a body of very many values is parsed the GIL changes hands often (the loop waits less for it);
    the interval is restored afterwards."""
    before = sys.getswitchinterval()
    seen: list[float] = []

    def build(data: dict[str, object]) -> int:
        seen.append(sys.getswitchinterval())
        return len(data)

    assert _parse_and_build(many_keys_body(30_000), build) == 3
    assert seen == [PARSE_SWITCH_INTERVAL] and sys.getswitchinterval() == before
