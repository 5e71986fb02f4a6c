"""sakura's llamacpp engine against llama.cpp's own llama-server: tokens/s and time to first token.

Both serve the same random-weight Qwen2 GGUF (``write_tiny_gguf``, about 440 MB at the default shape) with the
same threads and slots, and take the same streamed ``/v1/chat/completions`` requests (greedy, a fixed
``max_tokens``), in two shapes:

- ``plain``: a translation request as most tools send it: Sakura's system prompt and about 450 tokens of text,
  a different text each time (only the system prompt repeats);
- ``prefix``: as LunaTranslator and GalTransl send them: the same system prompt and glossary, the previous lines
  as context, then the new lines: about 1,470 prompt tokens, of which about 600 (prompt and glossary) repeat from
  the client's previous request; each client works through its own part of the same book;
- ``F``: books.fishhawk.top's worker: the system prompt, the previous segment's translation as an assistant turn,
  then a segment of about 500 characters (only the system prompt repeats);
- ``M``: a shared server (a sakura-share node, a team's box): every client translates its own book with its own
  glossary (about 600 tokens), the previous lines as context, then the new lines: with more clients than slots,
  a client's glossary has left its slot by the time its next request comes;
- ``S``: ``sakura translate`` starting every slot at once on one glossary: the clients start together, each
  with its own segment after the same system prompt and glossary.

For each shape and client count (1, 4, 8 on 4 slots), each client sends ``--requests`` requests one after another;
a run's tokens/s is all completion tokens over the run's wall time, its TTFT the median over its requests (from
sending to the first text), its CPU cost the server process's CPU time per completion token (a figure the load of
a shared machine hardly moves). Rounds pair sakura and llama-server on the same requests, the order alternating;
the ratios (sakura over llama-server) are medians over the rounds, with their range. Both servers keep running
through the rounds, so their prompt caches are warm as in real use; one shape's rounds run before the other's.

Build llama-server first (see docs/benchmarks/llamacpp.md) and pass its path:

    python benchmarks/llamacpp_vs_llama_server.py --llama-server .cache/llama-server-build/bin/llama-server

or compare sakura with itself under other options (the peer is then sakura with ``--baseline-args``), e.g. its
prompt cache as it was before it spanned slots and host memory:

    python benchmarks/llamacpp_vs_llama_server.py --baseline-args "--no-kv-unified --cache-ram 0"
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamacpp_support import (
    ServerProcess,
    benchmark_model,
    default_model_folder,
    describe_machine,
    free_port,
    sakura_command,
    serving,
)

from sakura_core.testing.metrics import metric_value

SYSTEM = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"
)
# sentences the benchmark texts are made of (any Japanese prose does: the model is random)
SENTENCES = (
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。",
    "「おはようございます、先輩。今日もいい天気ですね」",
    "雨の音で目が覚めた。時計を見ると、まだ午前五時だった。",
    "ありがとう。本当に、ありがとう。",
    "教室の扉を開けると、見知らぬ少女が俺の席に座っていた。",
    "「それで、君はいったい何者なんだ？」と彼は静かに尋ねた。",
    "駅前の小さな喫茶店で、私たちは三年ぶりに再会した。",
    "夕焼けに染まる川沿いの道を、二人は黙って歩き続けた。",
    "やる気マンゴスキン。",
    "王都の城壁は高く、その向こうには果てしない森が広がっている。",
)
# what the previous segment's translation looks like in ``F``'s assistant turn
TRANSLATIONS = (
    "她一边眺望着窗外，一边轻轻地叹了口气。",
    "魔法学园的入学典礼，在樱花花瓣飞舞的春日举行。",
    "我的名字是佐藤悠人，一个随处可见的普通高中生。",
    "「早上好，前辈。今天天气也很好呢」",
    "我被雨声吵醒了。看了看时钟，才早上五点。",
    "推开教室的门，一个陌生的少女正坐在我的座位上。",
)
GLOSSARY_TERMS = (
    ("先輩", "前辈"),
    ("佐藤悠人", "佐藤悠人"),
    ("魔法学園", "魔法学园"),
    ("王都", "王都"),
    ("喫茶店", "咖啡店"),
    ("入学式", "入学典礼"),
)


class PromptTokens:
    """Counts prompt tokens with the model's own vocabulary (llama.cpp, the vocabulary only)."""

    def __init__(self, model: Path) -> None:
        from sakura_llamacpp import native

        lib = native.import_llama_cpp()
        params = lib.llama_model_default_params()
        params.vocab_only = True
        loaded = lib.llama_model_load_from_file(str(model).encode(), params)
        self._tokenizer = native.Tokenizer(native.LoadedModel(lib, loaded, lib.llama_model_get_vocab(loaded), model))

    def count(self, text: str) -> int:
        return len(self._tokenizer.tokenize(text))


def chatml(messages: list[dict[str, str]]) -> str:
    """The prompt both servers make of ``messages`` (the model's ChatML template)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def text_of(tokens: PromptTokens, seed: int, target: int, prefix: str = "") -> str:
    """Sentences in an order drawn from ``seed``, as many as keep ``prefix + text`` within ``target`` tokens."""
    rng = random.Random(seed)
    text = ""
    while True:
        candidate = text + rng.choice(SENTENCES)
        if tokens.count(prefix + candidate) > target:
            return text
        text = candidate


def glossary(tokens: PromptTokens, target: int, book: int = 0) -> str:
    """A GalTransl-style glossary that makes system prompt + glossary about ``target`` tokens; each ``book`` has
    its own terms."""
    lines = ["根据以下术语表（可以为空）："]
    index = 0
    while tokens.count(chatml([{"role": "system", "content": SYSTEM}]) + "\n".join(lines)) < target:
        source, target_text = GLOSSARY_TERMS[(index + book) % len(GLOSSARY_TERMS)]
        number = f"{book}-{index}" if book else f"{index}"
        lines.append(f"{source}{number}->{target_text}{number} #第{number}号术语")
        index += 1
    return "\n".join(lines) + "\n"


@dataclass
class Workload:
    """The requests of both shapes, generated deterministically."""

    tokens: PromptTokens
    plain_text_tokens: int = 450
    prefix_total_tokens: int = 1470
    prefix_repeat_tokens: int = 600
    context_lines: int = 8
    segment_characters: int = 500
    _glossaries: dict[int, str] = field(default_factory=dict)
    _lines: dict[int, str] = field(default_factory=dict)

    def plain(self, key: int) -> list[dict[str, str]]:
        """System prompt and about ``plain_text_tokens`` of text, different for every ``key``."""
        head = "将下面的日文文本翻译成中文："
        text = text_of(self.tokens, key, self.plain_text_tokens, head)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": head + text}]

    def _line(self, index: int) -> str:
        if index not in self._lines:
            self._lines[index] = text_of(self.tokens, 1_000_000 + index, 40)
        return self._lines[index]

    def _glossary(self, book: int) -> str:
        if book not in self._glossaries:
            self._glossaries[book] = glossary(self.tokens, self.prefix_repeat_tokens, book)
        return self._glossaries[book]

    def prefix(self, client: int, step: int, book: int = 0) -> list[dict[str, str]]:
        """Client ``client``'s ``step``-th request: ``book``'s glossary, the previous lines, the new lines."""
        base = 100_000 * (client + 1) + step * 4
        context = "\n".join(self._line(base - i) for i in range(self.context_lines, 0, -1))
        head = f"{self._glossary(book)}上文：\n{context}\n将下面的日文文本根据对应关系和备注翻译成中文："
        user = head
        line = 0
        while True:
            candidate = user + self._line(base + line)
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": candidate}]
            if self.tokens.count(chatml(messages)) > self.prefix_total_tokens:
                break
            user = candidate + "\n"
            line += 1
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user.rstrip("\n")}]

    def own_book(self, client: int, step: int) -> list[dict[str, str]]:
        """``M``: as ``prefix``, every client with its own book and glossary."""
        return self.prefix(client, step, book=client + 1)

    def segment(self, seed: int) -> str:
        """About ``segment_characters`` characters of text."""
        rng = random.Random(seed)
        text = ""
        while len(text) < self.segment_characters:
            text += rng.choice(SENTENCES)
        return text

    def fishhawk(self, client: int, step: int) -> list[dict[str, str]]:
        """``F``: system, the previous segment's translation as the assistant's turn, the next segment."""
        seed = 10_000 * (client + 1) + step
        rng = random.Random(seed)
        previous = "".join(rng.choice(TRANSLATIONS) for _ in range(8))
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "assistant", "content": previous},
            {"role": "user", "content": "将下面的日文文本翻译成中文：" + self.segment(seed)},
        ]

    def start_together(self, client: int, step: int) -> list[dict[str, str]]:
        """``S``: one glossary for every client, a new one for every run (a new job: no slot holds it yet), then
        the client's own segment."""
        head = f"{self._glossary(1000 + step // 100)}将下面的日文文本根据对应关系和备注翻译成中文："
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": head + self.segment(20_000 * (client + 1) + step)},
        ]


@dataclass
class Reply:
    """One streamed answer as the client saw it."""

    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int | None
    ttft: float
    text: str


def stream_chat(url: str, messages: list[dict[str, str]], max_tokens: int) -> Reply:
    """One greedy streamed chat completion, parsing each chunk lightly (both servers pay the same client)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    body = {
        "model": "sakura",
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{url} answered {response.status}: {response.read()[:300]!r}")
    first = 0.0
    pieces: list[str] = []
    usage: dict[str, Any] = {}
    while line := response.readline():
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        if not first and b'"content":"' in line and b'"content":""' not in line:
            first = time.perf_counter() - started
        if b'"usage"' in line or b'"content":"' in line:
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                pieces.append(choice.get("delta", {}).get("content") or "")
    connection.close()
    details = usage.get("prompt_tokens_details") or {}
    return Reply(
        int(usage.get("completion_tokens", 0)),
        int(usage.get("prompt_tokens", 0)),
        details.get("cached_tokens"),
        first,
        "".join(pieces),
    )


@dataclass
class Run:
    """One shape x client-count run on one server."""

    tokens_per_s: float
    ttft: float
    replies: list[Reply]
    cpu_ms_per_token: float = 0.0  # the server's CPU time over the completion tokens: its cost, whatever the load
    busy_share: float | None = None  # sakura only: time inside llama_decode over the wall time


def run_clients(
    server: ServerProcess,
    requests: Callable[[int, int], list[dict[str, str]]],
    clients: int,
    per_client: int,
    max_tokens: int,
) -> Run:
    """``clients`` threads, each sending ``per_client`` requests one after another.

    The requests are built before the clock starts: building them counts tokens, CPU time that would otherwise
    fall inside the timed window and compete with the server for the machine's cores.
    """
    url = server.url
    prepared = [[requests(index, step) for step in range(per_client)] for index in range(clients)]
    replies: list[list[Reply]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            for messages in prepared[index]:
                replies[index].append(stream_chat(url, messages, max_tokens))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu_before, busy_before = server.cpu_seconds(), decode_seconds(url)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    flat = [reply for per in replies for reply in per]
    completion = sum(r.completion_tokens for r in flat)
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / max(completion, 1)
    busy_after = decode_seconds(url)
    busy = None if busy_before is None or busy_after is None else (busy_after - busy_before) / seconds
    return Run(completion / seconds, statistics.median(r.ttft for r in flat), flat, cpu_ms, busy)


def decode_seconds(url: str) -> float | None:
    """sakura's seconds inside ``llama_decode`` so far (``sakura_engine_decode_seconds_total``); None for a server
    without that figure."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
            return metric_value(reply.read().decode(), "sakura_engine_decode_seconds_total")
    except (OSError, LookupError):
        return None


def llama_server_command(binary: Path, model: Path, port: int, slots: int, n_ctx: int, threads: int) -> list[str]:
    """llama-server as Sakura users start it: ``-c`` is the context of all slots together."""
    return [
        str(binary),
        *("-m", str(model), "--host", "127.0.0.1", "--port", str(port)),
        *("-np", str(slots), "-c", str(slots * n_ctx), "-t", str(threads), "--no-webui"),
    ]


def version_of(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("version")]
    return lines[0] if lines else "unknown"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    peer_choice = parser.add_mutually_exclusive_group(required=True)
    peer_choice.add_argument("--llama-server", type=Path, help="path of the llama-server binary")
    peer_choice.add_argument(
        "--baseline-args",
        help="compare with sakura itself started with these further `sakura run` options (space-separated)",
    )
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=2048, help="context per slot")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--shapes", default="plain,prefix,F,M,S")
    parser.add_argument("--requests", type=int, default=2, help="requests per client and run")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of every request")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--omp-wait-policy",
        choices=["active", "passive"],
        default=None,
        help="OMP_WAIT_POLICY for both servers (passive: llama.cpp's threads sleep instead of spinning; "
        "steadier on a shared machine, slower on an idle one). Default: OpenMP's own",
    )
    parser.add_argument("--sakura-args", default="", help="more `sakura run` options, space-separated")
    parser.add_argument("--model-folder", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    model = benchmark_model(
        args.model_folder or default_model_folder(), hidden=args.hidden, layers=args.layers, file_type=args.file_type
    )
    tokens = PromptTokens(model)
    work = Workload(tokens)
    clients = [int(c) for c in args.clients.split(",")]
    shapes = args.shapes.split(",")
    env = {"OMP_WAIT_POLICY": args.omp_wait_policy} if args.omp_wait_policy else {}
    sakura_port, peer_port = free_port(), free_port()
    sakura_args = ["-np", str(args.slots), "--n-ctx", str(args.n_ctx), "-t", str(args.threads)]
    sakura_args += args.sakura_args.split()
    if args.llama_server:
        peer_name = "llama-server"
        peer_cmd = llama_server_command(args.llama_server, model, peer_port, args.slots, args.n_ctx, args.threads)
    else:
        peer_name = "baseline"
        peer_cmd = sakura_command(model, peer_port, *sakura_args, *args.baseline_args.split())

    def requests_for(shape: str, round_index: int, count: int) -> Callable[[int, int], list[dict[str, str]]]:
        """Both servers get the same requests in a round, and none twice: plain texts never repeat, and each
        prefix client moves on through its part of the book."""
        base = round_index * 1000 + count * 100
        if shape == "plain":
            return lambda client, step: work.plain(100 * base + 10 * client + step)
        by_shape = {"prefix": work.prefix, "F": work.fishhawk, "M": work.own_book, "S": work.start_together}
        make = by_shape[shape]
        return lambda client, step: make(client, base + step)

    results: dict[tuple[str, int], dict[str, list[Run]]] = {}
    with (
        serving(sakura_command(model, sakura_port, *sakura_args), "sakura", sakura_port, env) as sakura,
        serving(peer_cmd, peer_name, peer_port, env) as peer,
    ):
        servers: dict[str, ServerProcess] = {"sakura": sakura, peer_name: peer}
        for server in servers.values():  # warm-up: first decodes, page cache, prompt caches
            run_clients(server, lambda c, s: work.plain(-1 - c), 1, 1, 8)
        print(f"machine: {describe_machine()}; load before: {os.getloadavg()[0]:.2f}")
        loads = []
        # one shape after the other, as one kind of client would use a server: mixing them would measure how
        # well each server keeps one shape's prefix while serving the other (both restore it from their
        # host-memory prompt caches, --cache-ram)
        for shape in shapes:
            for round_index in range(args.rounds):
                order = ["sakura", peer_name] if round_index % 2 == 0 else [peer_name, "sakura"]
                for count in clients:
                    make = requests_for(shape, round_index, count)
                    for name in order:
                        run = run_clients(servers[name], make, count, args.requests, args.tokens)
                        results.setdefault((shape, count), {}).setdefault(name, []).append(run)
                        loads.append(os.getloadavg()[0])
                        print(
                            f"round {round_index + 1} {shape:6} {count} clients {name:12} "
                            f"{run.tokens_per_s:6.1f} tok/s  TTFT {run.ttft:5.2f} s  "
                            f"CPU {run.cpu_ms_per_token:5.1f} ms/token  "
                            + (f"in llama_decode {run.busy_share:4.0%}  " if run.busy_share is not None else "")
                            + f"cached {statistics.median([r.cached_tokens or 0 for r in run.replies]):.0f}",
                            flush=True,
                        )
        memory = {name: round(server.peak_rss_mb()) for name, server in servers.items()}

    print()
    print(
        f"sakura's llamacpp engine vs {peer_name}, {model.name} ({model.stat().st_size / 1e6:.0f} MB), "
        f"{args.threads} threads, {args.slots} slots, {args.tokens} tokens per request, "
        f"{args.requests} requests per client, {args.rounds} rounds, OMP_WAIT_POLICY "
        f"{args.omp_wait_policy or 'unset'}"
    )
    if args.llama_server:
        print(f"llama-server: {version_of(args.llama_server)}; llama-cpp-python: {llama_cpp_python_version()}")
    else:
        print(f"baseline: sakura with {args.baseline_args}; llama-cpp-python: {llama_cpp_python_version()}")
    print(
        f"load average during the runs: median {statistics.median(loads):.1f}, range "
        f"{min(loads):.1f}–{max(loads):.1f}; peak RSS MB: {memory}"
    )
    print(
        f"| shape | clients | sakura tok/s | {peer_name} tok/s | tok/s ratio | sakura TTFT s | {peer_name} TTFT s |"
        f" TTFT ratio | CPU per token ratio | prompt tokens | decoded per request (sakura / {peer_name}) |"
        " sakura in llama_decode |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    figures = []
    for (shape, count), runs in results.items():
        ours, theirs = runs["sakura"], runs[peer_name]
        speed = [a.tokens_per_s / b.tokens_per_s for a, b in zip(ours, theirs, strict=True)]
        ttft = [a.ttft / b.ttft for a, b in zip(ours, theirs, strict=True)]
        cpu = [a.cpu_ms_per_token / b.cpu_ms_per_token for a, b in zip(ours, theirs, strict=True)]
        prompt = statistics.median(r.prompt_tokens for run in ours for r in run.replies)
        peer_prompt = statistics.median(r.prompt_tokens for run in theirs for r in run.replies)
        cached = statistics.median((r.cached_tokens or 0) for run in ours for r in run.replies)
        peer_cached = statistics.median((r.cached_tokens or 0) for run in theirs for r in run.replies)
        # the prompt tokens each server actually decoded (the rest came from its cache)
        decoded = statistics.median(r.prompt_tokens - (r.cached_tokens or 0) for run in ours for r in run.replies)
        peer_decoded = statistics.median(
            r.prompt_tokens - (r.cached_tokens or 0) for run in theirs for r in run.replies
        )
        prompt_text = f"{prompt:.0f}" if prompt == peer_prompt else f"{prompt:.0f} / {peer_prompt:.0f}"
        shares = [r.busy_share for r in ours if r.busy_share is not None]
        busy_text = f"{statistics.median(shares):.0%}" if shares else "–"
        print(
            f"| {shape} | {count} | {statistics.median(r.tokens_per_s for r in ours):.1f} | "
            f"{statistics.median(r.tokens_per_s for r in theirs):.1f} | {spread(speed)} | "
            f"{statistics.median(r.ttft for r in ours):.2f} | {statistics.median(r.ttft for r in theirs):.2f} | "
            f"{spread(ttft)} | {spread(cpu)} | {prompt_text} | {decoded:.0f} / {peer_decoded:.0f} | {busy_text} |"
        )
        figures.append(
            {
                "shape": shape,
                "clients": count,
                "tokens_per_s_ratio": speed,
                "ttft_ratio": ttft,
                "cpu_per_token_ratio": cpu,
                "sakura_tokens_per_s": [r.tokens_per_s for r in ours],
                "peer": peer_name,
                "peer_tokens_per_s": [r.tokens_per_s for r in theirs],
                "sakura_ttft": [r.ttft for r in ours],
                "peer_ttft": [r.ttft for r in theirs],
                "prompt_tokens": [prompt, peer_prompt],
                "cached_tokens": [cached, peer_cached],
                "decoded_prompt_tokens": [decoded, peer_decoded],
                "sakura_in_llama_decode": shares,
            }
        )
    if args.json:
        print(json.dumps({"machine": describe_machine(), "memory_mb": memory, "figures": figures}))


def llama_cpp_python_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)


if __name__ == "__main__":
    main()
