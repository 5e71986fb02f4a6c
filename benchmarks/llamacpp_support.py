"""Shared pieces of the llamacpp benchmarks: the benchmark model, a sakura server subprocess, timing helpers.

Not a benchmark itself; ``llamacpp_p1_streaming.py`` and ``llamacpp_p2_concurrency.py`` import it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from sakura_llamacpp.tiny_model import FileType, write_tiny_gguf

from sakura_core.testing.ports import free_port

PROMPT = (
    "<|im_start|>system\n你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。<|im_end|>\n"
    "<|im_start|>user\n将下面的日文文本翻译成中文：彼女は窓の外を眺めながら、小さくため息をついた。<|im_end|>\n"
    "<|im_start|>assistant\n"
)
PROMPTS = [PROMPT.replace("彼女は", who) for who in ("彼女は", "俺は", "先輩は", "妹は")]


def benchmark_model(folder: Path, *, hidden: int, layers: int, file_type: str) -> Path:
    """The random-weight Qwen2 GGUF the benchmarks run (written once per shape into ``folder``)."""
    path = folder / f"sakura-bench-h{hidden}-l{layers}-v1.0-{file_type}.gguf"
    if not path.exists():
        heads = max(hidden // 64, 1)
        write_tiny_gguf(
            path,
            hidden=hidden,
            layers=layers,
            heads=heads,
            kv_heads=heads,
            ffn=3 * hidden,
            vocab_size=2000,
            file_type=file_type_of(file_type),
        )
    return path


def file_type_of(name: str) -> FileType:
    """``name`` as one of the GGUF file types ``write_tiny_gguf`` writes."""
    for file_type in get_args(FileType):
        if file_type == name:
            return file_type
    raise ValueError(f"no such file type: {name!r} (one of {', '.join(get_args(FileType))})")


def default_model_folder() -> Path:
    """Where benchmark models are kept between runs."""
    folder = Path(tempfile.gettempdir()) / "sakura-benchmark-models"
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def serving(command: list[str], name: str, port: int, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run a server ``command`` listening on ``port``; yield it once its /health says ok; stop it afterwards.

    Its log goes to a temporary file (a pipe nobody reads would fill up and stop a talkative server).
    """
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=log, text=True, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{name} exited: {log.read()[-4000:]}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                with urllib.request.urlopen(url + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become healthy in 120 s")
            time.sleep(0.1)
        yield ServerProcess(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its base URL and process id."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user and system, all threads); 0 where /proc cannot tell."""
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB; 0 where /proc cannot tell."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0


def sakura_command(model: Path, port: int, *engine_args: str) -> list[str]:
    """``sakura run --engine llamacpp`` on ``port`` without auth or self-check, with ``engine_args``."""
    return [
        sys.executable,
        "-c",
        "from sakura_core.cli import main; main()",
        "run",
        "--engine",
        "llamacpp",
        "--model",
        str(model),
        "--listen",
        f"127.0.0.1:{port}",
        "--no-auth",
        "--no-self-check",
        "--log-level",
        "warning",
        *engine_args,
    ]


@contextlib.contextmanager
def sakura_server(model: Path, *engine_args: str) -> Iterator[str]:
    """Run ``sakura run --engine llamacpp`` on a free loopback port; yield its base URL once /health says ok."""
    port = free_port()
    with serving(sakura_command(model, port, *engine_args), "sakura", port) as server:
        yield server.url


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def describe_machine() -> str:
    """A one-line description of this machine for the report."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model_name = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    return f"{cpus} CPUs ({model_name}), Python {sys.version.split()[0]}"


def completion_body(prompt: str, max_tokens: int) -> dict[str, Any]:
    """A greedy streamed ``/v1/completions`` request that reports usage at the end."""
    return {
        "model": "sakura",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def raw_stream(url: str, prompt: str, max_tokens: int) -> tuple[int, float, float]:
    """Stream a completion with the standard library, parsing only the usage event: the lightest client.

    Returns (completion tokens, seconds, seconds to the first event with text).
    """
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    connection.request(
        "POST",
        "/v1/completions",
        body=json.dumps(completion_body(prompt, max_tokens)),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    while line := response.readline():
        if not line.startswith(b"data: "):
            continue
        if line.startswith(b"data: [DONE]"):
            break
        if not first:
            first = time.perf_counter() - started
        if b'"usage"' in line and b'"choices":[]' in line:
            tokens = json.loads(line[6:])["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    connection.close()
    return tokens, seconds, first
