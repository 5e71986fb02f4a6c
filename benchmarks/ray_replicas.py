"""Ray replicas: aggregate tokens/s of 2 replicas against 1, and the front's added latency per token event.

A Ray cluster started on this machine (``sakura_ray.testing.LocalRayCluster``) runs the replicas; every server is
``sakura run --engine llamacpp`` as a subprocess, driven over HTTP by a standard-library client that parses only
the final usage event (the least CPU taken from the servers).

1. Throughput, on a model big enough that decoding is the work: ``--replicas 1`` and ``--replicas 2``
   (``--replica-cpus 1``, one llama.cpp thread and ``-np P`` per replica), each given ``2 * P`` clients at once, each
   client streaming a greedy completion of ``--tokens`` tokens; aggregate tokens/s. For reference, the same load on
   the single-process server using every CPU (no Ray: ``-np 2P``, one thread per CPU).
2. The front's cost per token event, on a tiny model whose decoding takes almost nothing: one client streaming
   through ``--replicas 1`` against the single-process server (same thread count), seconds per token event and
   time to the first token.

Rounds are paired and their order alternates, so that drifts in machine load cancel out; figures are medians with
their range.

    python benchmarks/ray_replicas.py [--hidden 512 --layers 8 --file-type f32 --tokens 128 --rounds 6 --parallel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
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

#: The tiny model of the latency rounds: decoding a token costs a fraction of a millisecond.
TINY = {"hidden": 64, "layers": 2, "file_type": "f32"}


@contextlib.contextmanager
def ray_cluster(num_cpus: int) -> Iterator[str]:
    """A Ray head on this machine for the benchmark; its address (this process's environment joins it)."""
    from sakura_ray.testing import LocalRayCluster

    cluster = LocalRayCluster.start(num_cpus=num_cpus)
    saved = {name: os.environ.get(name) for name in cluster.environment}
    os.environ.update(cluster.environment)  # the sakura subprocesses join the cluster as drivers
    try:
        yield cluster.address
    finally:
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def replica_args(address: str, replicas: int, parallel: int) -> list[str]:
    """``sakura run`` arguments for ``replicas`` replicas of one CPU, one thread and ``parallel`` sequences."""
    return [
        "--replicas", str(replicas), "--ray-address", address, "--replica-cpus", "1",
        "--threads", "1", "-np", str(parallel), "--n-ctx", "1024",
    ]  # fmt: skip


async def load_round(url: str, clients: int, max_tokens: int) -> float:
    """``clients`` greedy streams at once; aggregate tokens/s."""
    started = time.perf_counter()
    prompts = [PROMPTS[index % len(PROMPTS)] for index in range(clients)]
    results = await asyncio.gather(*(asyncio.to_thread(raw_stream, url, p, max_tokens) for p in prompts))
    tokens = sum(result[0] for result in results)
    assert tokens == clients * max_tokens, f"{tokens} tokens, expected {clients * max_tokens}"
    return tokens / (time.perf_counter() - started)


async def throughput(servers: dict[str, str], rounds: int, clients: int, max_tokens: int) -> dict[str, list[float]]:
    """Aggregate tokens/s of every server in each round, the servers' order rotating from round to round."""
    names = list(servers)
    for name in names:  # warm-up
        await load_round(servers[name], clients, 8)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order if index % 2 == 0 else reversed(order):
            figures[name].append(await load_round(servers[name], clients, max_tokens))
    return figures


def latency(servers: dict[str, str], rounds: int, max_tokens: int) -> dict[str, dict[str, list[float]]]:
    """One stream at a time: milliseconds per token event and to the first token, per server and round."""
    figures: dict[str, dict[str, list[float]]] = {name: {"ms_per_event": [], "first_ms": []} for name in servers}
    names = list(servers)
    for name in names:
        raw_stream(servers[name], PROMPTS[0], 8)  # warm-up
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            tokens, seconds, first = raw_stream(servers[name], PROMPTS[0], max_tokens)
            assert tokens == max_tokens, tokens
            figures[name]["ms_per_event"].append(1000 * (seconds - first) / (tokens - 1))
            figures[name]["first_ms"].append(1000 * first)
    return figures


def spread(values: list[float]) -> str:
    return f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--file-type", default="f32", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per client and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--parallel", type=int, default=2, help="sequences per replica (-np)")
    parser.add_argument("--latency-tokens", type=int, default=256)
    parser.add_argument("--model-folder", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    from sakura_llamacpp.engine import available_cpus

    # llama.cpp's threads spin while they wait; on a shared machine a multi-thread decode then collapses. Every
    # server (and every replica, through the cluster's environment) waits passively instead.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    cpus = available_cpus()
    folder = args.model_folder or default_model_folder()
    model = benchmark_model(folder, hidden=args.hidden, layers=args.layers, file_type=args.file_type)
    tiny = benchmark_model(folder, **TINY)  # type: ignore[arg-type]
    clients = 2 * args.parallel
    with ray_cluster(num_cpus=max(4, cpus + 1)) as address, contextlib.ExitStack() as servers:
        enter = servers.enter_context
        started = time.perf_counter()
        big = {
            "1 replica": enter(sakura_server(model, *replica_args(address, 1, args.parallel))),
            "2 replicas": enter(sakura_server(model, *replica_args(address, 2, args.parallel))),
            f"single process, {cpus} threads": enter(
                sakura_server(model, "--threads", str(cpus), "-np", str(clients), "--n-ctx", "1024")
            ),
        }
        small = {
            "single process": enter(sakura_server(tiny, "--threads", "1", "-np", "1", "--n-ctx", "1024")),
            "1 replica": enter(sakura_server(tiny, *replica_args(address, 1, 1))),
        }
        print(f"servers ready in {time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.1f}")
        rates = asyncio.run(throughput(big, args.rounds, clients, args.tokens))
        events = latency(small, args.rounds, args.latency_tokens)
        load = os.getloadavg()
    ratios = [two / one for two, one in zip(rates["2 replicas"], rates["1 replica"], strict=True)]
    added = [
        ray - plain
        for ray, plain in zip(
            events["1 replica"]["ms_per_event"], events["single process"]["ms_per_event"], strict=True
        )
    ]
    added_first = [
        ray - plain
        for ray, plain in zip(events["1 replica"]["first_ms"], events["single process"]["first_ms"], strict=True)
    ]
    size_mb = model.stat().st_size / 1e6
    print(f"machine: {describe_machine()}; load average after the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"model: {model.name} ({size_mb:.0f} MB); {clients} clients x {args.tokens} tokens, {args.rounds} rounds")
    print("| server | aggregate tokens/s, median (range) |")
    print("|---|---:|")
    for name, values in rates.items():
        print(f"| {name} | {spread(values)} |")
    print(f"2 replicas / 1 replica (median of paired rounds): {spread(ratios)}")
    print(f"tiny model, one stream of {args.latency_tokens} tokens: ms per token event, median (range)")
    for name, per_event in events.items():
        print(f"| {name} | {spread(per_event['ms_per_event'])} | first token {spread(per_event['first_ms'])} ms |")
    print(
        f"added by the front and Ray per token event: {spread(added)} ms; to the first token: {spread(added_first)} ms"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "machine": describe_machine(),
                    "load": load,
                    "throughput": rates,
                    "ratio": ratios,
                    "latency": events,
                    "added_ms_per_event": added,
                    "added_first_ms": added_first,
                }
            )
        )


if __name__ == "__main__":
    main()
