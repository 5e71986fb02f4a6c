"""The server's own overhead: streamed chat completions through sakura vs the engine called directly.

A fast test engine (``TokenPump``: each token is one event-loop turn and a few microseconds, no thread) serves
``--tokens`` tokens per request. The baseline runs the same generations in this process through
``LoadedModel.stream`` (the hooks and the engine, no HTTP). The server side runs ``serve()`` in a
subprocess (the real path: routes, scheduler, metrics, SSE, one log line per request) and this process streams
``/v1/chat/completions`` over loopback with aiohttp, counting ``data:`` events without JSON parsing, so the client's
work is small but included.

For each level of concurrent streams it reports requests/s and the mean time per token event seen by one
stream, for both sides, their ratio, and the latency the server adds per token event.

    python benchmarks/server_overhead.py [--levels 1,100,1000] [--tokens 64] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from pydantic import Field

from sakura_core.engine import Engine, EngineOptions
from sakura_core.identity import make_model_info
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.ports import free_port
from sakura_core.types import GenerationRequest, ModelInfo, SamplingParams

MODEL = "sakura-7b-qwen2.5-v1.0-bench"
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
#: The end of a chunked HTTP body: the previous chunk's CRLF, then the zero-length chunk.
LAST_CHUNK = b"\r\n0\r\n\r\n"
MESSAGES = [{"role": "user", "content": "将下面的日文文本翻译成中文：吾輩は猫である。名前はまだ無い。"}]


class PumpOptions(EngineOptions):
    """How many sequences run together and how long each answer is."""

    parallel: int = Field(1, ge=1)
    tokens: int = Field(64, ge=1)


class TokenPump(Engine):
    """The cheapest engine the contract allows: ``tokens`` one-character tokens, one event-loop turn each."""

    name = "pump"
    Options = PumpOptions
    options: PumpOptions

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        self.model_info = make_model_info(model, context_length=8192, model_version=model_version)
        return self.model_info

    @property
    def parallelism(self) -> int:
        return self.options.parallel

    def count_tokens(self, text: str) -> int:
        return len(text)

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        for _ in range(self.options.tokens):
            await asyncio.sleep(0)
            yield "猫"


@dataclass
class Measure:
    """One side at one concurrency level."""

    requests: int
    seconds: float
    events: int
    per_event: list[float]
    cpu_seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def seconds_per_event(self) -> float:
        return statistics.fmean(self.per_event)


def raise_open_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run_workers(concurrency: int, requests: int, one: object) -> Measure:
    """``concurrency`` workers share ``requests`` runs of ``one()`` → (events, seconds)."""
    remaining = requests
    per_event: list[float] = []
    events = 0

    async def worker() -> None:
        nonlocal remaining, events
        while remaining > 0:
            remaining -= 1
            count, seconds = await one()  # type: ignore[operator]
            events += count
            per_event.append(seconds / count)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measure(requests, time.perf_counter() - started, events, per_event)


async def baseline(concurrency: int, requests: int, tokens: int) -> Measure:
    """The engine through its LoadedModel (the hooks and the engine), in this process, no HTTP."""
    engine = TokenPump(PumpOptions(parallel=concurrency, tokens=tokens))
    model = await LoadedModel.load(engine, PluginRegistry.create(entry_points=False), MODEL)
    prompt = model.render(MESSAGES)

    async def one() -> tuple[int, float]:
        started = time.perf_counter()
        count = 0
        request = GenerationRequest(prompt=prompt, params=SamplingParams(max_tokens=tokens + 8, seed=1))
        async for delta in model.stream(request):
            count += 1 if delta.text else 0
        return count, time.perf_counter() - started

    return await run_workers(concurrency, requests, one)


async def through_server(port: int, concurrency: int, requests: int, tokens: int) -> Measure:
    """Streamed chat completions over loopback keep-alive connections, one per stream.

    The client is deliberately thin (raw HTTP/1.1 over asyncio streams; it counts ``data:`` events and waits for
    the last chunk of the chunked body) so that the measurement is the server's, not an HTTP library's.
    """
    body = json.dumps({"messages": MESSAGES, "max_tokens": tokens + 8, "seed": 1, "stream": True}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(concurrency):
        connections.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one() -> tuple[int, float]:
        reader, writer = await connections.get()
        started = time.perf_counter()
        writer.write(head + body)
        received = b""
        while not received.endswith(LAST_CHUNK):
            piece = await reader.read(1 << 16)
            if not piece:
                raise ConnectionError("the server closed the connection")
            received += piece
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        connections.put_nowait((reader, writer))
        # minus the role chunk, the final chunk and [DONE]
        return received.count(b"data: ") - 3, time.perf_counter() - started

    await one()  # warm-up
    try:
        return await run_workers(concurrency, requests, one)
    finally:
        while not connections.empty():
            connections.get_nowait()[1].close()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVER_SCRIPT = """
import asyncio, logging, os, resource, sys
from sakura_core.plugins import PluginRegistry
from sakura_core.server import serve
from sakura_core.server.settings import ServerSettings
sys.path.insert(0, sys.argv[5])
from server_overhead import PumpOptions, TokenPump
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # the access log is part of the cost
port, parallel, tokens = (int(a) for a in sys.argv[1:4])
engine = TokenPump(PumpOptions(parallel=parallel, tokens=tokens))
settings = ServerSettings(port=port, self_check=False, max_queue=100_000, shutdown_grace_seconds=1)
asyncio.run(serve(settings, engine, PluginRegistry.create(entry_points=False), sys.argv[4], None))
"""


async def start_server(parallel: int, tokens: int) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", SERVER_SCRIPT, str(port), str(parallel), str(tokens), MODEL, BENCHMARKS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return process, port
            await asyncio.sleep(0.02)
    process.kill()
    _, errors = await process.communicate()
    raise RuntimeError(f"the server did not start: {errors.decode()}")


def median_measure(measures: list[Measure]) -> Measure:
    """The round with the median requests/s."""
    return sorted(measures, key=lambda m: m.requests_per_second)[len(measures) // 2]


async def measure_level(level: int, requests: int, tokens: int, rounds: int) -> tuple[Measure, Measure]:
    """Alternate baseline and server rounds at one concurrency level; the median round of each side."""
    process, port = await start_server(level, tokens)
    directs, serveds = [], []
    try:
        for _ in range(rounds):
            cpu = time.process_time()
            direct = await baseline(level, requests, tokens)
            direct.cpu_seconds = time.process_time() - cpu
            cpu = process_cpu_seconds(process.pid)
            served = await through_server(port, level, requests, tokens)
            served.cpu_seconds = process_cpu_seconds(process.pid) - cpu
            assert served.events == direct.events == requests * tokens, (served.events, direct.events)
            directs.append(direct)
            serveds.append(served)
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 10)
    return median_measure(directs), median_measure(serveds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,100,1000", help="Concurrent streams to measure, comma-separated.")
    parser.add_argument("--tokens", type=int, default=64, help="Tokens per request.")
    parser.add_argument("--requests", type=int, default=2000, help="Requests per round (at least 2 per stream).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per level; medians are reported.")
    args = parser.parse_args()
    raise_open_file_limit()
    logging.basicConfig(level=logging.WARNING)
    levels = [int(level) for level in args.levels.split(",")]
    load = os.getloadavg()[0]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}")
    print(
        f"# {args.tokens} tokens per request, {args.rounds} alternating rounds per level (medians); "
        "server in a subprocess, client and baseline in this process\n"
    )
    rows = []
    for level in levels:
        requests = max(args.requests, 2 * level)
        direct, served = await measure_level(level, requests, args.tokens, args.rounds)
        rows.append((level, requests, direct, served))
        print(f"level {level}: done", file=sys.stderr)
    print(
        "| concurrent streams | requests | direct req/s | server req/s | server/direct | direct µs/event "
        "| server µs/event | added µs/event | direct CPU µs/event | server CPU µs/event |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for level, requests, direct, served in rows:
        print(
            f"| {level} | {requests} | {direct.requests_per_second:,.0f} | {served.requests_per_second:,.0f} | "
            f"{served.requests_per_second / direct.requests_per_second:.3f} | {direct.seconds_per_event * 1e6:,.1f} | "
            f"{served.seconds_per_event * 1e6:,.1f} | "
            f"{(served.seconds_per_event - direct.seconds_per_event) * 1e6:,.1f} | "
            f"{direct.cpu_seconds / direct.events * 1e6:,.1f} | {served.cpu_seconds / served.events * 1e6:,.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
