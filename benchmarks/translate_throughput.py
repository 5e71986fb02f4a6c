"""Aggregate tokens/s of ``sakura translate --server`` against four raw clients on the same ``sakura run -np 4``.

One ``sakura run --engine llamacpp --n-parallel 4`` serves a random-weight Qwen2 GGUF. A text of ``--chunks``
chunks (two lines each) is translated by ``sakura translate --server`` as a subprocess; its report gives the
generated tokens, the generations and the seconds from the first request to the last answer. Two baselines, each
four raw clients (aiohttp) pulling requests from one queue and sending them to ``/v1/chat/completions``:

- **same requests**: what ``sakura translate`` sends, without its ordering: every chunk with a previous chunk's
  translation as context (taken from the translate round's cache), as many generations per chunk as it made, with
  its frequency penalties (0, 0.05, 0.2 for degeneration, the same again from 0.05 for the line-count retry). The
  ratio to this baseline is what ``sakura translate`` costs as a client: idle slots, waiting, HTTP handling.
- **plain**: every chunk without context, no glossary, penalty 0, going round the chunks until as many requests
  as the translate round made. Its ratio also counts the context's cost (longer prompts, more prefill).

The figure is generated tokens per second, translate / baseline, per group of rounds (the order rotates); the
median and the range are printed. The model's weights are random, so every answer runs to ``--max-tokens`` and
translate retries it as degenerate (three tries), then splits the chunk into its two lines and tries each three
times before keeping it flagged: about nine generations a chunk. llama.cpp's threads wait
passively (``OMP_WAIT_POLICY=passive``) unless the environment says otherwise: spinning threads collapse on a
shared machine.

    python benchmarks/translate_throughput.py [--chunks 200 --rounds 3 --hidden 256 --layers 4 --max-tokens 24]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from llamacpp_support import benchmark_model, default_model_folder, describe_machine, median, sakura_server
from sakura_translate.cache import CACHE_SUFFIX
from sakura_translate.chunking import chunk_lines

from sakura_core.degeneration import DEGENERATION_RETRY_PENALTIES
from sakura_core.plugins import PluginRegistry

SENTENCES = (
    "吾輩は猫である。名前はまだ無い。",
    "どこで生れたかとんと見当がつかぬ。",
    "何でも薄暗いじめじめした所でニャーニャー泣いていた。",
    "吾輩はここで始めて人間というものを見た。",
    "しかもあとで聞くとそれは書生という人間中で一番獰悪な種族であった。",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
)
CHUNK_CHARS = 64


def novel_lines(chunks: int) -> list[str]:
    """Lines that cut into exactly ``chunks`` chunks of two lines each at ``CHUNK_CHARS``."""
    # 30 characters a line: two lines (61) fit in a chunk, three (92) do not
    lines = [f"{n:04d}、" + (SENTENCES[n % len(SENTENCES)] * 3)[:25] for n in range(2 * chunks)]
    assert len(chunk_lines(lines, CHUNK_CHARS)) == chunks
    return lines


def translate_round(url: str, source: Path, folder: Path, max_tokens: int) -> tuple[Measured, list[str]]:
    """``sakura translate`` once, from nothing: what it measured, and the translations in its cache."""
    output, report = folder / "out.txt", folder / "report.json"
    for stale in folder.glob("out.txt*"):
        stale.unlink()
    command = [sys.executable, "-c", "from sakura_core.cli import main; main()", "translate", str(source)]
    command += ["--server", url, "--chunk-chars", str(CHUNK_CHARS), "--max-tokens", str(max_tokens), "--greedy"]
    command += ["-o", str(output), "--report", str(report), "--keep-cache"]
    subprocess.run(command, check=True, capture_output=True)
    data = json.loads(report.read_text())
    cache = folder / f"out.txt{CACHE_SUFFIX}"
    translations = [json.loads(line)["translation"] for line in cache.read_text(encoding="utf-8").splitlines()]
    stats = data["stats"]
    return Measured(stats["completion_tokens"], data["seconds"], stats["generations"]), translations


@dataclass(frozen=True)
class Measured:
    tokens: int
    seconds: float
    requests: int

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True)
class Request:
    text: str
    history: str | None
    frequency_penalty: float


def same_requests(chunks: list[str], translations: list[str], generations: int) -> list[Request]:
    """What ``sakura translate`` sent: each chunk with a previous translation as context, its retry penalties."""
    per_chunk = round(generations / len(chunks))
    # each try of the cascade (the chunk, then its halves) is one degeneration series: 0, then the retry penalties
    series = (0.0, *DEGENERATION_RETRY_PENALTIES)
    penalties = [series[index % len(series)] for index in range(per_chunk)]
    return [
        Request(text, translations[(index - 1) % len(translations)] if index else None, penalty)
        for index, text in enumerate(chunks)
        for penalty in penalties
    ]


def plain_requests(chunks: list[str], count: int) -> list[Request]:
    """``count`` requests going round the chunks, without context."""
    return [Request(chunks[index % len(chunks)], None, 0.0) for index in range(count)]


async def raw_round(url: str, requests: list[Request], max_tokens: int, clients: int = 4) -> Measured:
    """Four clients sending ``requests`` from one queue."""
    import aiohttp

    prompt_format = PluginRegistry.create(entry_points=False).prompt_format("v1.0")
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    tokens = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal tokens
        while not queue.empty():
            request = queue.get_nowait()
            body = {
                "model": "sakura",
                "messages": prompt_format.translation_messages(request.text, "", request.history),
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "top_p": 0.3,
                "top_k": 40,
                "frequency_penalty": request.frequency_penalty,
                "do_sample": False,
            }
            async with session.post(url + "/v1/chat/completions", json=body) as response:
                tokens += (await response.json())["usage"]["completion_tokens"]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return Measured(tokens, time.perf_counter() - started, len(requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="Groups of rounds (translate and both baselines).")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads of the server.")
    args = parser.parse_args()

    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    model = benchmark_model(default_model_folder(), hidden=args.hidden, layers=args.layers, file_type="f32")
    lines = novel_lines(args.chunks)
    chunks = ["\n".join(lines[i : i + 2]) for i in range(0, len(lines), 2)]
    print(describe_machine())
    print(f"model {model.name}; {args.chunks} chunks of 2 lines; max_tokens {args.max_tokens}; greedy")
    print(f"server: --n-parallel 4 --threads {args.threads}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with (
        tempfile.TemporaryDirectory() as folder_name,
        sakura_server(model, "--n-parallel", "4", "--n-ctx", "1024", "--threads", str(args.threads)) as url,
    ):
        folder = Path(folder_name)
        source = folder / "novel.txt"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        translations: list[str] = []
        generations = 0
        sides = ("translate", "same requests", "plain")
        ratios: dict[str, list[float]] = {"same requests": [], "plain": []}
        for group in range(args.rounds):
            order = sides[group % 3 :] + sides[: group % 3]
            if order[0] != "translate" and not translations:
                order = sides
            measured: dict[str, Measured] = {}
            for side in order:
                if side == "translate":
                    measured[side], translations = translate_round(url, source, folder, args.max_tokens)
                    generations = measured[side].requests
                elif side == "same requests":
                    requests = same_requests(chunks, translations, generations)
                    measured[side] = asyncio.run(raw_round(url, requests, args.max_tokens))
                else:
                    measured[side] = asyncio.run(raw_round(url, plain_requests(chunks, generations), args.max_tokens))
            parts = []
            for side in order:
                m = measured[side]
                parts.append(
                    f"{side} {m.tokens} tokens / {m.requests} requests in {m.seconds:.1f} s ({m.rate:.1f} tok/s)"
                )
            for side in ratios:
                ratios[side].append(measured["translate"].rate / measured[side].rate)
            print(f"group {group + 1}: " + "; ".join(parts))
            print(f"  translate / same requests {ratios['same requests'][-1]:.3f}, / plain {ratios['plain'][-1]:.3f}")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for side, values in ratios.items():
        print(f"translate / {side} tokens/s: median {median(values):.3f}, range {min(values):.3f}–{max(values):.3f}")


if __name__ == "__main__":
    main()
