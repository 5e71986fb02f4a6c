"""The same work in llama.cpp as sakura loads it and in llama-server: how fast each reads a prompt and decodes.

Where sakura and llama-server decode the same prompt tokens, tokens/s can only differ by how fast each one's
llama.cpp does that work, or by the time a server spends outside it. This script measures the first: the libllama
that llama-cpp-python loads (the one sakura's engine drives), called directly in this process through the
low-level bindings, against llama-server's own build, on the same GGUF, threads, batch sizes and token ids.

Each round, both read the same prompt of ``--prompt-tokens`` token ids into an empty cache (one ``llama_decode``
of ``n_batch`` 2,048, ``n_ubatch`` 512, llama-server's defaults; ``/completion`` with ``cache_prompt`` off) and
then decode ``--decode-tokens`` greedy tokens one at a time after it; the order of the two alternates from round
to round. llama-server's figures are its own ``timings`` (prompt and predicted tokens per second); the direct
side's are timed around the calls. Reported: the medians and the range of the paired ratios (direct over
llama-server).

    python benchmarks/llamacpp_libllama_vs_llama_server.py --llama-server PATH --hidden 512 --layers 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from llamacpp_support import benchmark_model, default_model_folder, describe_machine, serving
from llamacpp_vs_llama_server import llama_cpp_python_version, llama_server_command, spread, version_of

from sakura_core.testing.ports import free_port


class DirectLlama:
    """One llama.cpp context through llama-cpp-python's low-level bindings, as sakura's engine makes it."""

    def __init__(self, model: Path, threads: int, n_ctx: int) -> None:
        from sakura_llamacpp import native

        self._lib = lib = native.import_llama_cpp()  # as the engine loads it (llama.cpp's log kept off the terminal)
        self._model = lib.llama_model_load_from_file(str(model).encode(), lib.llama_model_default_params())
        params = lib.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = n_ctx, 2048, 512, 1
        params.n_threads = params.n_threads_batch = threads
        self._context = lib.llama_init_from_model(self._model, params)
        self._memory = lib.llama_get_memory(self._context)
        self._batch = lib.llama_batch_init(2048, 0, 1)
        self._sampler = lib.llama_sampler_init_greedy()

    def run(self, tokens: list[int], decode: int) -> tuple[float, float]:
        """Read ``tokens`` into an empty cache, then decode ``decode`` greedy tokens: both rates in tokens/s."""
        lib, batch = self._lib, self._batch
        lib.llama_memory_clear(self._memory, True)
        for index, token in enumerate(tokens):
            batch.token[index], batch.pos[index], batch.n_seq_id[index] = token, index, 1
            batch.seq_id[index][0], batch.logits[index] = 0, index == len(tokens) - 1
        batch.n_tokens = len(tokens)
        started = time.perf_counter()
        if lib.llama_decode(self._context, batch) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
        prompt_seconds = time.perf_counter() - started
        position = len(tokens)
        started = time.perf_counter()
        for _ in range(decode):
            token = lib.llama_sampler_sample(self._sampler, self._context, -1)
            batch.token[0], batch.pos[0], batch.logits[0], batch.n_tokens = token, position, True, 1
            if lib.llama_decode(self._context, batch) != 0:
                raise RuntimeError("llama_decode failed while decoding")
            position += 1
        return len(tokens) / prompt_seconds, decode / (time.perf_counter() - started)

    def close(self) -> None:
        lib = self._lib
        lib.llama_sampler_free(self._sampler)
        lib.llama_batch_free(self._batch)
        lib.llama_free(self._context)
        lib.llama_model_free(self._model)


def llama_server_run(url: str, tokens: list[int], decode: int) -> tuple[float, float]:
    """The same work through llama-server's ``/completion``: its own prompt and decode rates."""
    body = {
        "prompt": tokens,
        "n_predict": decode + 1,  # its first token comes from the prompt's logits, as the direct side's does
        "cache_prompt": False,
        "temperature": 0,
        "ignore_eos": True,
    }
    request = urllib.request.Request(
        f"{url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as reply:
        timings: dict[str, Any] = json.load(reply)["timings"]
    return float(timings["prompt_per_second"]), float(timings["predicted_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", type=Path, required=True, help="path of the llama-server binary")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=1400)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--omp-wait-policy", choices=["active", "passive"], default=None)
    args = parser.parse_args()
    if args.omp_wait_policy:  # before libllama loads in this process; llama-server inherits it
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    model = benchmark_model(default_model_folder(), hidden=args.hidden, layers=args.layers, file_type=args.file_type)
    n_ctx = args.prompt_tokens + args.decode_tokens + 64
    rng = random.Random(1)
    tokens = [rng.randrange(10, 900) for _ in range(args.prompt_tokens)]  # ids within the model's vocabulary
    port = free_port()
    command = [*llama_server_command(args.llama_server, model, port, 1, n_ctx, args.threads), "--cache-ram", "0"]
    direct = DirectLlama(model, args.threads, n_ctx)
    prompt_ratios: list[float] = []
    decode_ratios: list[float] = []
    rates: dict[str, list[tuple[float, float]]] = {"direct": [], "llama-server": []}
    loads: list[float] = []
    try:
        with serving(command, "llama-server", port) as server:
            direct.run(tokens, 8)  # warm-up: first decodes, page cache
            llama_server_run(server.url, tokens, 8)
            for round_index in range(args.rounds):
                order = ["direct", "llama-server"] if round_index % 2 == 0 else ["llama-server", "direct"]
                for name in order:
                    if name == "direct":
                        result = direct.run(tokens, args.decode_tokens)
                    else:
                        result = llama_server_run(server.url, tokens, args.decode_tokens)
                    rates[name].append(result)
                    loads.append(os.getloadavg()[0])
                    print(f"round {round_index + 1} {name:12} prompt {result[0]:7.1f}  decode {result[1]:6.1f} tok/s")
                direct_rates, server_rates = rates["direct"][-1], rates["llama-server"][-1]
                prompt_ratios.append(direct_rates[0] / server_rates[0])
                decode_ratios.append(direct_rates[1] / server_rates[1])
    finally:
        direct.close()

    print()
    print(
        f"{model.name} ({model.stat().st_size / 1e6:.0f} MB), {args.threads} threads, {args.prompt_tokens}-token "
        f"prompt, {args.decode_tokens} decoded tokens, {args.rounds} rounds, OMP_WAIT_POLICY "
        f"{args.omp_wait_policy or 'unset'}; {describe_machine()}"
    )
    print(f"llama-server: {version_of(args.llama_server)}; llama-cpp-python: {llama_cpp_python_version()}")
    print(f"load average: median {statistics.median(loads):.1f}, range {min(loads):.1f}–{max(loads):.1f}")
    print("| | direct (llama-cpp-python's libllama) | llama-server | ratio |")
    print("|---|---:|---:|---:|")
    for label, index, ratios in (("prompt tokens/s", 0, prompt_ratios), ("decode tokens/s", 1, decode_ratios)):
        ours = statistics.median(r[index] for r in rates["direct"])
        theirs = statistics.median(r[index] for r in rates["llama-server"])
        print(f"| {label} | {ours:.1f} | {theirs:.1f} | {spread(ratios)} |")


if __name__ == "__main__":
    main()
