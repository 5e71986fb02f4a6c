"""When a slot saves its prompt to the host-memory cache: the rule in use (only when a new request keeps less than
half of the slot's cells) against saving whenever any cell is dropped, on `sakura translate`'s traffic (every
client one glossary, its own passages).

Each side runs in a process of its own (so each has its own peak RSS), rounds alternate which goes first. Printed
per round: wall time, saves, host cache bytes, prompt tokens decoded and the process's peak RSS.

    python benchmarks/llamacpp_host_cache_saves.py --hidden 512 --layers 8 --threads 2 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from llamacpp_support import benchmark_model, default_model_folder, describe_machine

#: The two rules: save when the new request keeps less than this share of the slot's cells (1.0: whenever any
#: cell is dropped, the rule before).
RULES = {"keeps less than half": 0.5, "drops any cell": 1.0}
GLOSSARY = "".join(f"用語{i}の名前->术语{i}的名字 #备注{i}\n" for i in range(60))


def prompt(client: int, request: int) -> str:
    """A Sakura v1.0 prompt: the shared system prompt and glossary, then 12 lines of this client's passage."""
    text = "".join(f"第{client}章{request}節、彼女は窓の外を眺めながら小さくため息をついた{k}。\n" for k in range(12))
    return (
        "<|im_start|>system\n你是一个轻小说翻译模型。<|im_end|>\n<|im_start|>user\n根据以下术语表：\n"
        f"{GLOSSARY}将下面的日文文本翻译成中文：{text}<|im_end|>\n<|im_start|>assistant\n"
    )


async def run_side(model: Path, keep_share: float, clients: int, requests: int, threads: int) -> dict[str, float]:
    """One side's traffic in this process: ``clients`` at once, ``requests`` each, 16 greedy tokens a request."""
    import sakura_llamacpp.batch as batch
    from sakura_llamacpp.engine import LlamaCppEngine
    from sakura_llamacpp.options import LlamaCppOptions

    from sakura_core.types import SamplingParams

    batch.HOST_CACHE_SAVE_BELOW_KEPT = keep_share
    engine = LlamaCppEngine(LlamaCppOptions(n_ctx=clients * 2048, n_parallel=clients, threads=threads))
    await engine.load(str(model))
    params = SamplingParams(do_sample=False, max_tokens=16)

    async def client(number: int) -> None:
        for request in range(requests):
            async for _ in engine.generate(prompt(number, request), params):
                pass

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    wall = time.perf_counter() - started
    stats = engine.prompt_cache_stats()
    await engine.close()
    assert stats is not None
    return {
        "wall": wall,
        "saves": stats.host_cache_saves,
        "host_mib": stats.host_cache_bytes / 2**20,
        "decoded": stats.prompt_tokens_decoded,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=6, help="requests per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", type=float, help=argparse.SUPPRESS)  # a child process: run one side, print JSON
    args = parser.parse_args()
    model = benchmark_model(default_model_folder(), hidden=args.hidden, layers=args.layers, file_type="f32")
    if args.side is not None:
        figures = asyncio.run(run_side(model, args.side, args.clients, args.requests, args.threads))
        print(json.dumps({**figures, "peak_rss_mb": peak_rss_mb()}))
        return
    print(f"machine: {describe_machine()}; model {model.name}; {args.clients} clients x {args.requests} requests")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in RULES}
    for round_number in range(args.rounds):
        order = list(RULES) if round_number % 2 == 0 else list(reversed(RULES))
        for name in order:
            child = [sys.executable, __file__, "--side", str(RULES[name])]
            child += ["--hidden", str(args.hidden), "--layers", str(args.layers), "--threads", str(args.threads)]
            child += ["--clients", str(args.clients), "--requests", str(args.requests)]
            output = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            results[name].append(figures)
            load = os.getloadavg()[0]
            print(
                f"round {round_number + 1} {name:>20}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()),
                f"(load {load:.1f})",
            )
    for name, runs in results.items():
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"median {name:>20}: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
