"""/metrics as prometheus_client parses it, and counters that add up after a chaos run: random disconnects (before
admission, while queued, mid-stream), bad requests, finished ones, and streams the shutdown ends."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from sakura_core.server.runner import _drain
from sakura_core.server.settings import ServerSettings

GENERATION_ROUTES = ("/v1/chat/completions", "/v1/completions")


def request_bytes(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + data


async def client(port: int, path: str, body: dict, read_bytes: int | None, delay: float) -> None:
    """Send one request; read ``read_bytes`` of the answer (all of it when None) after ``delay``, then close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(path, body))
    await writer.drain()
    try:
        await asyncio.sleep(delay)
        if read_bytes is None:
            await reader.read()
        elif read_bytes:
            await reader.read(read_bytes)
    finally:
        writer.close()


def parse(text: str) -> dict[str, Counter]:
    """Family name → Counter of label tuples → value, from prometheus_client's own parser."""
    families: dict[str, Counter] = {}
    for family in text_string_to_metric_families(text):
        values = families.setdefault(family.name, Counter())
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return families


async def test_counters_reconcile_after_random_disconnects_and_a_shutdown(start_server) -> None:
    server = await start_server(
        settings=ServerSettings(shutdown_grace_seconds=0.1), parallel=2, token_delay=0.002, answer_length=60
    )
    rng = random.Random(25)
    clients = []
    for i in range(24):
        path = GENERATION_ROUTES[i % 2]
        body: dict = {"max_tokens": 60, "stream": rng.random() < 0.5}
        body |= {"messages": [{"role": "user", "content": f"テスト{i}"}]} if "chat" in path else {"prompt": f"p{i}"}
        if i % 6 == 5:
            body["temperature"] = "hot"  # refused with a 400
        read_bytes = rng.choice([None, None, 0, 200])  # all, nothing (gone at once), part of a stream
        clients.append(client(server.port, path, body, read_bytes, rng.choice([0.0, 0.01, 0.05])))
    await asyncio.gather(*clients, return_exceptions=True)

    # two long streams still running when the shutdown grace ends
    long = {"prompt": "long", "max_tokens": 4000, "stream": True}
    enders = [asyncio.ensure_future(client(server.port, "/v1/completions", long, None, 0)) for _ in range(2)]
    for _ in range(300):
        if server.state.scheduler.active == 2:
            break
        await asyncio.sleep(0.01)
    await _drain(server.state, 0.1, None)
    await asyncio.gather(*enders, return_exceptions=True)

    state = server.state
    for _ in range(300):  # every handler has logged its request
        if sum(state.metrics.requests.values()) >= 26 + 1 and not state.metrics.running:
            break
        await asyncio.sleep(0.01)
    families = parse(state.metrics.render(state.gauges()))

    requests = Counter()
    for (_, labels), value in families["sakura_requests"].items():
        requests[dict(labels)["route"]] += value
    results = Counter()
    by_result = Counter()
    for (_, labels), value in families["sakura_request_results"].items():
        labels = dict(labels)
        results[labels["route"]] += value
        by_result[(labels["result"], labels["reason"])] += value
    assert requests == results  # requests = finished + cancelled + failed + refused, route by route
    assert sum(requests[route] for route in GENERATION_ROUTES) == 26
    assert by_result[("cancelled", "shutting_down")] == 2
    assert by_result[("refused", "400")] == 4
    assert by_result[("cancelled", "client_closed")] >= 1
    assert by_result[("finished", "length")] >= 1
    assert {result for result, _ in by_result} <= {"finished", "cancelled", "failed", "refused"}

    generations = Counter()
    for (_, labels), value in families["sakura_generations"].items():
        generations[dict(labels)["outcome"]] += value
    assert generations["shutting_down"] == 2  # not counted with the clients that went away
    finished = sum(v for (result, reason), v in by_result.items() if result == "finished" and reason != "ok")
    assert finished == generations["stop"] + generations["length"]
