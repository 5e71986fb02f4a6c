"""P2: aggregate tokens/s of sakura's llamacpp engine with 4 concurrent clients vs 1 client, over HTTP.

``sakura run --engine llamacpp -np 4`` serves a random-weight Qwen2 GGUF big enough that decoding, not HTTP, is
the work; each client streams a greedy ``/v1/completions`` of a fixed length (with a standard-library client that
parses only the usage event, or with ``--client openai``). The same rounds then run on the engine in this process,
without HTTP, to show the ceiling that llama.cpp's batching sets on this CPU. Rounds
alternate (1 client, 4 clients, ...) in one run; the ratio is the median of the paired rounds' ratios of
total tokens / wall time.

    python benchmarks/llamacpp_p2_concurrency.py [--hidden 1024 --layers 8 --file-type f32 --tokens 128 --rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from llamacpp_support import (
    PROMPTS,
    benchmark_model,
    default_model_folder,
    describe_machine,
    median,
    raw_stream,
    sakura_server,
)


async def one_stream(client: object, prompt: str, max_tokens: int) -> int:
    """Stream one greedy completion; return its completion tokens."""
    stream = await client.completions.create(  # type: ignore[attr-defined]
        model="sakura",
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    tokens = 0
    async for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return tokens


async def raw_one_stream(url: str, prompt: str, max_tokens: int) -> int:
    """Stream one greedy completion with the standard-library client (in a thread); return its tokens."""
    tokens, _, _ = await asyncio.to_thread(raw_stream, url, prompt, max_tokens)
    return tokens


async def concurrent_round(client: object, url: str, clients: int, max_tokens: int) -> tuple[int, float]:
    """``clients`` streams at once: (total tokens, wall seconds). ``client`` None: the standard-library client."""
    started = time.perf_counter()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(clients)]
    if client is None:
        counts = await asyncio.gather(*(raw_one_stream(url, p, max_tokens) for p in prompts))
    else:
        counts = await asyncio.gather(*(one_stream(client, p, max_tokens) for p in prompts))
    return sum(counts), time.perf_counter() - started


async def measure(
    url: str, rounds: int, max_tokens: int, clients: int, client_kind: str
) -> tuple[list[float], list[float]]:
    import openai

    client = None
    if client_kind == "openai":
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    await concurrent_round(client, url, clients, 8)  # warm-up
    single: list[float] = []
    multi: list[float] = []
    for index in range(rounds):  # paired rounds, the order alternating, so drifts in load cancel out
        for count in (clients, 1) if index % 2 else (1, clients):
            tokens, seconds = await concurrent_round(client, url, count, max_tokens)
            assert tokens == count * max_tokens, tokens
            (multi if count == clients else single).append(tokens / seconds)
    if client is not None:
        await client.close()
    return single, multi


async def measure_in_process(
    model: Path, rounds: int, max_tokens: int, clients: int, threads: int
) -> tuple[list[float], list[float]]:
    """The same rounds on the engine itself, in this process, without HTTP: the batching ceiling of llama.cpp."""
    from sakura_llamacpp.engine import LlamaCppEngine
    from sakura_llamacpp.options import LlamaCppOptions
    from sakura_llamacpp.testing import collect

    from sakura_core.types import SamplingParams

    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=clients, threads=threads, n_ctx=1024))
    await engine.load(str(model))
    params = SamplingParams(do_sample=False, max_tokens=max_tokens)

    async def round_of(count: int) -> float:
        started = time.perf_counter()
        runs = await asyncio.gather(*(collect(engine, PROMPTS[i % len(PROMPTS)], params) for i in range(count)))
        return sum(r.last.completion_tokens for r in runs) / (time.perf_counter() - started)

    await round_of(clients)  # warm-up
    single: list[float] = []
    multi: list[float] = []
    try:
        for index in range(rounds):
            for count in (clients, 1) if index % 2 else (1, clients):
                (multi if count == clients else single).append(await round_of(count))
    finally:
        await engine.close()
    return single, multi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per client and round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--client",
        default="raw",
        choices=["raw", "openai"],
        help="HTTP client: the standard library reading lines (least CPU taken from the server), or openai",
    )
    parser.add_argument("--model-folder", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    from sakura_llamacpp.engine import available_cpus

    threads = args.threads or available_cpus()
    model = benchmark_model(
        args.model_folder or default_model_folder(), hidden=args.hidden, layers=args.layers, file_type=args.file_type
    )
    size_mb = model.stat().st_size / 1e6
    engine_args = ["--n-parallel", str(args.clients), "--threads", str(threads), "--n-ctx", "1024"]
    with sakura_server(model, *engine_args) as url:
        single, multi = asyncio.run(measure(url, args.rounds, args.tokens, args.clients, args.client))
    engine_single, engine_multi = asyncio.run(
        measure_in_process(model, args.rounds, args.tokens, args.clients, threads)
    )
    one, many = median(single), median(multi)
    ratios = [m / o for m, o in zip(multi, single, strict=True)]
    ratio = median(ratios)
    engine_ratio = median([m / o for m, o in zip(engine_multi, engine_single, strict=True)])
    figures = {
        "machine": describe_machine(),
        "model": f"{model.name} ({size_mb:.0f} MB, hidden {args.hidden}, {args.layers} layers, {args.file_type})",
        "threads": threads,
        "client": args.client,
        "tokens_per_client": args.tokens,
        "rounds": args.rounds,
        "one_client_tokens_per_s": round(one, 1),
        "concurrent_tokens_per_s": round(many, 1),
        "clients": args.clients,
        "ratio": round(ratio, 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "one_client_rounds": [round(x, 1) for x in single],
        "concurrent_rounds": [round(x, 1) for x in multi],
        "in_process_one_tokens_per_s": round(median(engine_single), 1),
        "in_process_concurrent_tokens_per_s": round(median(engine_multi), 1),
        "in_process_ratio": round(engine_ratio, 3),
    }
    print(
        f"P2 concurrency, {figures['model']}, {threads} threads, {args.client} client, "
        f"{args.tokens} tokens per client x {args.rounds} rounds"
    )
    print(f"machine: {figures['machine']}")
    print(f"| median of rounds | 1 client | {args.clients} clients | ratio (median of paired rounds) |")
    print("|---|---:|---:|---:|")
    print(f"| sakura over HTTP, aggregate tokens/s | {one:.1f} | {many:.1f} | {ratio:.2f} |")
    print(
        f"| the engine in-process (no HTTP): llama.cpp's own batching | {median(engine_single):.1f} | "
        f"{median(engine_multi):.1f} | {engine_ratio:.2f} |"
    )
    print(f"ratio of each round: {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
