"""Large JSON bodies are parsed (and validated, and freed) off the event loop: a body of hundreds of thousands of
tiny values in an ignored field does not stall the server. Loopback only, a few megabytes."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from sakura_core.server.http.httpio import INLINE_PARSE_BYTES
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
