"""What sakura adds on top of Ollama: throughput of the same generations three ways, in one run.

1. baseline: the ``ollama`` client's raw streaming ``generate`` straight to Ollama;
2. engine: ``OllamaEngine.generate`` in-process (the same client, plus options, counting and stop handling);
3. server: ``sakura run --engine ollama`` in a subprocess, streamed chat completions with the ``openai`` client.

Each is run one request at a time and with ``--concurrency`` requests at once, on a tiny random-weight model (where
per-token costs show most) and a larger one (hidden 256, 4 layers). Figures are tokens per second and the ratio to
the baseline measured in the same run, the three paths interleaved; the test Ollama (tools/install_test_ollama.sh)
or SAKURA_TEST_OLLAMA is used.

    python plugins/sakura-ollama/benchmarks/ollama_overhead.py [--tokens 256] [--requests 8] [--concurrency 4]
        [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import ollama
import openai
from sakura_llamacpp.tiny_model import write_tiny_gguf
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.options import OllamaOptions
from sakura_ollama.sampling import ollama_options
from sakura_ollama.testing import chatml
from sakura_ollama.testing.real_server import start_real_ollama
from sakura_ollama.testing.whole_characters import write_whole_character_copy

from sakura_core.testing.ports import free_port
from sakura_core.types import SamplingParams

TEXTS = ["やる気マンゴスキン", "雨の音で目が覚めた。", "ありがとう。本当に、ありがとう。", "俺の名前は佐藤悠人。"]
NUM_CTX = 2048


async def timed(run_one: Callable[[int], Awaitable[int]], requests: int, concurrency: int) -> float:
    """Tokens per second of ``requests`` runs of ``run_one(i)`` (which returns its token count), ``concurrency`` at
    a time."""
    semaphore = asyncio.Semaphore(concurrency)

    async def limited(index: int) -> int:
        async with semaphore:
            return await run_one(index)

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(limited(i) for i in range(requests))))
    return tokens / (time.perf_counter() - started)


async def bench_model(
    gguf: Path, tokens: int, requests: int, concurrency: int, repeats: int, home: Path
) -> list[tuple]:
    server = await asyncio.to_thread(start_real_ollama, home, parallel=concurrency)
    rows: list[tuple] = []
    engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False, parallel=concurrency, num_ctx=NUM_CTX))
    sakura = None
    try:
        await engine.load(str(gguf))
        assert engine.ollama_model is not None
        model = engine.ollama_model
        client = ollama.AsyncClient(host=server.url)
        params = SamplingParams(max_tokens=tokens, do_sample=False)
        options = ollama_options(params, num_ctx=NUM_CTX)  # the very options the engine sends

        async def direct(index: int) -> int:
            stream = await client.generate(model, chatml(TEXTS[index % 4]), raw=True, stream=True, options=options)
            async for chunk in stream:
                if chunk.done:
                    return int(chunk.eval_count or 0)
            return 0

        async def through_engine(index: int) -> int:
            last = 0
            async for delta in engine.generate(
                chatml(TEXTS[index % 4]), SamplingParams(max_tokens=tokens, do_sample=False)
            ):
                last = delta.completion_tokens
            return last

        port = free_port()
        sakura = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sakura_core.cli",
            "run",
            "--engine",
            "ollama",
            "--model",
            str(gguf),
            "--ollama-host",
            server.url,
            "--no-spawn",
            "--num-ctx",
            str(NUM_CTX),
            "-np",
            str(concurrency),
            "--no-self-check",
            "--log-level",
            "warning",
            "--listen",
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        chat = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)

        async def through_server(index: int) -> int:
            stream = await chat.chat.completions.create(
                model="x",
                messages=[{"role": "user", "content": f"将下面的日文文本翻译成中文：{TEXTS[index % 4]}"}],
                max_tokens=tokens,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"do_sample": False},
            )
            count = 0
            async for chunk in stream:
                if chunk.usage is not None:
                    count = chunk.usage.completion_tokens
            return count

        paths = {"baseline": direct, "engine": through_engine, "server": through_server}
        for width in sorted({1, concurrency}):
            await timed(direct, width, width)  # warm up
            runs: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(repeats):  # interleaved, so that a slower moment of the machine hits every path alike
                for name, run_one in paths.items():
                    runs[name].append(await timed(run_one, requests, width))
            baseline = statistics.median(runs["baseline"])
            for name, values in runs.items():
                value = statistics.median(values)
                rows.append((gguf.name, width, name, value, value / baseline))
        await chat.close()
        await client.close()
    finally:
        if sakura is not None and sakura.returncode is None:
            sakura.send_signal(signal.SIGINT)
            await sakura.wait()
        await engine.close()
        await asyncio.to_thread(server.stop)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each path; the median is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        tiny = write_tiny_gguf(root / "sakura-tiny-v1.0-f32.gguf")
        tiny, _ = write_whole_character_copy(tiny, root / "sakura-tiny-whole-v1.0-f32.gguf")
        larger = write_tiny_gguf(root / "sakura-larger-v1.0-f32.gguf", hidden=256, layers=4, heads=4, kv_heads=2)
        larger, _ = write_whole_character_copy(larger, root / "sakura-larger-whole-v1.0-f32.gguf")
        rows = []
        for index, gguf in enumerate((tiny, larger)):
            rows += await bench_model(
                gguf, args.tokens, args.requests, args.concurrency, args.repeats, root / f"home{index}"
            )
    print(f"{args.requests} requests of {args.tokens} tokens, median of {args.repeats} runs; ratio: to the baseline")
    print(f"{'model':<36} {'at once':>7} {'path':<9} {'tokens/s':>9} {'ratio':>6}")
    for model, width, name, value, ratio in rows:
        print(f"{model:<36} {width:>7} {name:<9} {value:>9.0f} {ratio:>6.2f}")


if __name__ == "__main__":
    asyncio.run(main())
