"""The llamacpp engine's prompt cache in-process: how much of a prefix it reuses, what saving and restoring cost the
other slots, and the memory it takes.

Three measurements on the benchmark model (a random-weight Qwen2 GGUF, ``llamacpp_support.benchmark_model``):

- the two shapes of issue 20, through the engine: (1) a prefix in slot A while A generates, the same prefix arriving
  for slot B; (2) prompt A, then B, then A again on a one-slot engine. Printed: the prompt tokens reused of those
  shared;
- the stall: slot 0 streams a long answer while slot 1 serves prompts that push each other out of it (each one saved
  to host memory, then restored). Printed: the longest save or restore against the median decode step;
- memory: the process's peak RSS through traffic that fills the host cache, against the same traffic without it.

    python benchmarks/llamacpp_prompt_cache.py --hidden 1024 --layers 8 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from llamacpp_support import benchmark_model, default_model_folder, describe_machine
from llamacpp_vs_llama_server import PromptTokens, Workload, chatml
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.host_cache import MIB
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.prefix import common_prefix_length
from sakura_llamacpp.testing import collect

from sakura_core.types import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_tokens=16)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def engine_for(model: Path, args: argparse.Namespace, **options: object) -> LlamaCppEngine:
    settings = {"n_ctx": args.n_ctx, "threads": args.threads, **options}
    engine = LlamaCppEngine(LlamaCppOptions(**settings))
    await engine.load(str(model))
    return engine


async def issue_shapes(model: Path, work: Workload, args: argparse.Namespace) -> None:
    a, b = chatml(work.own_book(0, 0)), chatml(work.own_book(0, 1))
    other = chatml(work.own_book(1, 0))
    engine = await engine_for(model, args, n_parallel=2)
    try:
        answering = asyncio.Event()

        async def answer_a() -> None:  # slot A: its whole prompt is in once its first token is out
            async for _ in engine.generate(a, SamplingParams(do_sample=False, max_tokens=256)):
                answering.set()

        first = asyncio.ensure_future(answer_a())
        await answering.wait()
        second = await collect(engine, b, GREEDY)
        shared = common_prefix_length(engine.tokenize(a), engine.tokenize(b))
        still_running = not first.done()
        await first
        print(
            f"shape 1 (prefix in busy slot A, same prefix to cold slot B): {second.last.cached_tokens} of {shared} "
            f"shared tokens reused ({100 * (second.last.cached_tokens or 0) / shared:.0f}%), "
            f"A still generating meanwhile: {still_running}"
        )
    finally:
        await engine.close()
    engine = await engine_for(model, args, n_parallel=1)
    try:
        await collect(engine, a, GREEDY)
        await collect(engine, other, GREEDY)
        again = await collect(engine, a, GREEDY)
        total = engine.count_tokens(a)
        print(
            f"shape 2 (A, B, A on one slot): {again.last.cached_tokens} of {total} prompt tokens reused "
            f"({100 * (again.last.cached_tokens or 0) / total:.0f}%)"
        )
    finally:
        await engine.close()


async def stall(model: Path, work: Workload, args: argparse.Namespace) -> None:
    engine = await engine_for(model, args, n_parallel=2)
    try:
        gaps: list[float] = []
        streaming_now = asyncio.Event()

        async def stream() -> None:
            last = 0.0
            async for _ in engine.generate(chatml(work.plain(7)), SamplingParams(do_sample=False, max_tokens=400)):
                now = time.perf_counter()
                if last:
                    gaps.append(now - last)
                last = now
                streaming_now.set()

        streaming = asyncio.ensure_future(stream())
        await streaming_now.wait()
        for step in range(args.swaps):
            await collect(engine, chatml(work.own_book(step % 2, 0)), GREEDY)
        await streaming
        stats = engine.prompt_cache_stats()
        assert stats is not None
        print(
            f"stall: {stats.host_cache_saves} saves and {stats.host_cache_hits} restores of about "
            f"{engine.count_tokens(chatml(work.own_book(0, 0)))} tokens ({stats.host_cache_bytes / 1e6:.1f} MB "
            f"cached); longest save/restore {1000 * stats.longest_transfer_seconds:.1f} ms, median decode step "
            f"{1000 * stats.median_step_seconds:.1f} ms; slot 0's tokens came {1000 * statistics.median(gaps):.1f} ms "
            "apart (median)"
        )
    finally:
        await engine.close()


def reset_peak_rss() -> None:
    """Start this process's peak RSS afresh (Linux: ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


async def traffic(model: Path, work: Workload, args: argparse.Namespace, cache_ram: int) -> tuple[float, str]:
    """Two clients at a time, each on a book of its own, through ``--books`` books; the peak RSS it took."""
    engine = await engine_for(model, args, n_parallel=args.slots, cache_ram=cache_ram)
    try:
        for book in range(0, args.books, 2):
            await asyncio.gather(*(collect(engine, chatml(work.own_book(book + c, 0)), GREEDY) for c in range(2)))
        stats = engine.prompt_cache_stats()
        assert stats is not None
        held = (
            f"host cache {stats.host_cache_bytes / 1e6:.0f} MB in {stats.host_cache_entries} states "
            f"({stats.host_cache_saves} saved, {stats.host_cache_evictions} evicted)"
        )
        return peak_rss_mb(), held
    finally:
        await engine.close()


async def memory(model: Path, work: Workload, args: argparse.Namespace) -> None:
    reset_peak_rss()
    without, _ = await traffic(model, work, args, 0)
    reset_peak_rss()
    with_cache, held = await traffic(model, work, args, args.cache_ram)
    print(
        f"memory: peak RSS {without:.0f} MB with --cache-ram 0, {with_cache:.0f} MB with --cache-ram "
        f"{args.cache_ram} ({args.cache_ram * MIB / 1e6:.0f} MB): {with_cache - without:.0f} MB more; {held}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--prefix-tokens", type=int, default=2100, help="system prompt and glossary")
    parser.add_argument("--swaps", type=int, default=6, help="prompts that push each other out of slot 1")
    parser.add_argument("--books", type=int, default=16, help="books (own glossaries) for the memory run")
    parser.add_argument("--cache-ram", type=int, default=256, help="MiB for the memory run")
    parser.add_argument("--model-folder", type=Path, default=None)
    args = parser.parse_args()
    model = benchmark_model(
        args.model_folder or default_model_folder(), hidden=args.hidden, layers=args.layers, file_type=args.file_type
    )
    work = Workload(
        PromptTokens(model), prefix_repeat_tokens=args.prefix_tokens, prefix_total_tokens=args.prefix_tokens + 400
    )
    print(
        f"{describe_machine()}; {model.name} ({model.stat().st_size / 1e6:.0f} MB), {args.threads} threads, "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, load {os.getloadavg()[0]:.1f}"
    )
    asyncio.run(issue_shapes(model, work, args))
    asyncio.run(stall(model, work, args))
    asyncio.run(memory(model, work, args))


if __name__ == "__main__":
    main()
