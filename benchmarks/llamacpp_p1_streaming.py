"""P1: streaming tokens/s through sakura over HTTP vs llama-cpp-python called directly, same GGUF and prompt.

Both sides decode greedily with the same threads; rounds are paired (direct and sakura, the order alternating) in
one run and the ratio is the median of the pairs' ratios. The direct side drives ``Llama.generate`` (token ids,
exact count) and turns each token into text as it comes; the sakura side streams ``/v1/completions`` from this
process (with a standard-library client that parses only the usage event, or with ``--client openai``) while
``sakura run --engine llamacpp`` serves in a subprocess.

    python benchmarks/llamacpp_p1_streaming.py [--hidden 1024 --layers 8 --file-type f32 --tokens 128 --rounds 10]
"""

from __future__ import annotations

import argparse
import codecs
import json
import time
from pathlib import Path

from llamacpp_support import (
    PROMPT,
    benchmark_model,
    default_model_folder,
    describe_machine,
    median,
    raw_stream,
    sakura_server,
)


def direct_round(llm: object, prompt_tokens: list[int], max_tokens: int) -> tuple[int, float, float]:
    """One greedy generation through llama-cpp-python: (tokens, seconds, decode-only tokens/s)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = time.perf_counter()
    first = 0.0
    count = 0
    llm.reset()  # type: ignore[attr-defined]
    for token in llm.generate(prompt_tokens, top_k=1, temp=0.0, reset=True):  # type: ignore[attr-defined]
        decoder.decode(llm.detokenize([token]))  # type: ignore[attr-defined]
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count == max_tokens:
            break
    ended = time.perf_counter()
    return count, ended - started, (count - 1) / (ended - first)


def sakura_round(client: object, url: str, max_tokens: int) -> tuple[int, float, float]:
    """One greedy streamed completion through sakura: (tokens, seconds, decode-only tokens/s).

    ``client`` is an ``openai.OpenAI`` client, or None for the standard-library client of ``raw_stream``.
    """
    if client is None:
        tokens, seconds, first_at = raw_stream(url, PROMPT, max_tokens)
        return tokens, seconds, (tokens - 1) / (seconds - first_at)
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    chunks = 0
    stream = client.completions.create(  # type: ignore[attr-defined]
        model="sakura",
        prompt=PROMPT,
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices:
            chunks += 1
            if chunks == 1:
                first = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    ended = time.perf_counter()
    tokens = tokens or chunks
    return tokens, ended - started, (tokens - 1) / (ended - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
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

    import llama_cpp
    import openai
    from sakura_llamacpp.engine import available_cpus

    threads = args.threads or available_cpus()
    model = benchmark_model(
        args.model_folder or default_model_folder(), hidden=args.hidden, layers=args.layers, file_type=args.file_type
    )
    size_mb = model.stat().st_size / 1e6
    llm = llama_cpp.Llama(
        str(model), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    prompt_tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    direct: list[tuple[int, float, float]] = []
    served: list[tuple[int, float, float]] = []
    with sakura_server(model, "--n-parallel", "1", "--threads", str(threads), "--n-ctx", "2048") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0) if args.client == "openai" else None
        direct_round(llm, prompt_tokens, 16)  # warm-up both sides
        sakura_round(client, url, 16)
        for index in range(args.rounds):  # paired rounds, the order alternating, so drifts in load cancel out
            if index % 2:
                served.append(sakura_round(client, url, args.tokens))
                direct.append(direct_round(llm, prompt_tokens, args.tokens))
            else:
                direct.append(direct_round(llm, prompt_tokens, args.tokens))
                served.append(sakura_round(client, url, args.tokens))
    assert all(count == args.tokens for count, _, _ in direct + served), (direct, served)
    direct_rates = [count / seconds for count, seconds, _ in direct]
    served_rates = [count / seconds for count, seconds, _ in served]
    ratios = [s / d for s, d in zip(served_rates, direct_rates, strict=True)]
    decode_ratios = [s[2] / d[2] for s, d in zip(served, direct, strict=True)]
    direct_rate, served_rate, ratio = median(direct_rates), median(served_rates), median(ratios)
    direct_decode, served_decode = median([r for _, _, r in direct]), median([r for _, _, r in served])
    decode_ratio = median(decode_ratios)
    figures = {
        "machine": describe_machine(),
        "model": f"{model.name} ({size_mb:.0f} MB, hidden {args.hidden}, {args.layers} layers, {args.file_type})",
        "threads": threads,
        "client": args.client,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "direct_tokens_per_s": round(direct_rate, 1),
        "sakura_tokens_per_s": round(served_rate, 1),
        "ratio": round(ratio, 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "direct_decode_tokens_per_s": round(direct_decode, 1),
        "sakura_decode_tokens_per_s": round(served_decode, 1),
        "decode_ratio": round(decode_ratio, 3),
        "direct_rounds": [round(x, 1) for x in direct_rates],
        "sakura_rounds": [round(x, 1) for x in served_rates],
    }
    print(
        f"P1 streaming, {figures['model']}, {threads} threads, {args.client} client, "
        f"{args.tokens} tokens x {args.rounds} rounds"
    )
    print(f"machine: {figures['machine']}")
    print("| median of rounds | llama-cpp-python direct | sakura over HTTP | ratio (median of paired rounds) |")
    print("|---|---:|---:|---:|")
    print(f"| tokens/s (whole request) | {direct_rate:.1f} | {served_rate:.1f} | {ratio:.3f} |")
    print(f"| tokens/s (decode only) | {direct_decode:.1f} | {served_decode:.1f} | {decode_ratio:.3f} |")
    print(f"ratio of each round: {', '.join(f'{r:.3f}' for r in ratios)}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
