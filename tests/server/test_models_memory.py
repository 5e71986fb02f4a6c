"""Several real models in one ``sakura run``: unloading returns memory; a load does not stall another's stream."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import SakuraProcess, spawn_sakura

#: The default model's stream: enough tokens to outlast the other model's load.
STREAM_TOKENS = 480


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger tiny GGUF (tens of MB of weights), so that loading it takes a while and its memory shows."""
    from sakura_llamacpp.tiny_model import write_tiny_gguf

    folder = tmp_path_factory.mktemp("tiny-big")
    path = folder / "sakura-big-qwen2.5-v1.0.gguf"
    return write_tiny_gguf(path, name="sakura-big-qwen2.5-v1.0", hidden=512, layers=6, heads=8, kv_heads=4, seed=2)


@pytest.fixture
def two_models(tiny_gguf: Path, big_gguf: Path, tmp_path: Path) -> Iterator[SakuraProcess]:
    server = spawn_sakura(tiny_gguf, tmp_path, "-m", f"big={big_gguf}", "--models-max", "2")
    try:
        yield server
    finally:
        server.stop()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _post(port: int, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _stream_stamps(port: int, during: threading.Event | None = None) -> list[float]:
    """When each chunk of a stream on the default model came; ``during`` is set after the fifth chunk."""
    body = {"prompt": "こんにちは", "n_predict": STREAM_TOKENS, "stream": True, "temperature": 0}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    stamps: list[float] = []
    try:
        conn.request("POST", "/completion", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        for line in response:
            if line.startswith(b"data: "):
                stamps.append(time.monotonic())
                if during is not None and len(stamps) == 5:
                    during.set()
    finally:
        conn.close()
    assert len(stamps) > 50
    return stamps


def _gaps(stamps: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(stamps)]


def test_unloading_a_model_returns_its_memory(two_models: SakuraProcess) -> None:
    pid = two_models.process.pid
    before = _rss_bytes(pid)
    assert _post(two_models.port, "/v1/completions", {"model": "big", "prompt": "a", "max_tokens": 2})[0] == 200
    loaded = _rss_bytes(pid)
    assert loaded - before > 20 * 1024 * 1024, (before, loaded)  # the weights alone are over 40 MB
    assert _post(two_models.port, "/models/unload", {"model": "big"}) == (200, {"success": True})
    after = _rss_bytes(pid)
    assert after - before < (loaded - before) / 2, (before, loaded, after)


def test_a_stream_does_not_stall_while_another_model_loads(two_models: SakuraProcess) -> None:
    quiet = _gaps(_stream_stamps(two_models.port))
    started = threading.Event()
    loaded: list[tuple[int, Any]] = []
    window: list[float] = []

    def load_big() -> None:
        started.wait(30)
        window.append(time.monotonic())
        loaded.append(_post(two_models.port, "/models/load", {"model": "big"}))
        window.append(time.monotonic())

    loader = threading.Thread(target=load_big)
    loader.start()
    stamps = _stream_stamps(two_models.port, during=started)
    loader.join(60)
    assert loaded == [(200, {"success": True})]
    during = [stamp for stamp in stamps if window[0] <= stamp <= window[1]]
    assert len(during) >= 5, f"only {len(during)} chunks came while the other model loaded"
    busy = _gaps(during)
    # the load ran in a worker thread: the stream's worst gap stays near the quiet stream's
    assert max(busy) < max(max(quiet) * 5, 0.25), (max(quiet), max(busy), len(during))


def test_the_model_past_models_max_unloads_the_least_recently_used_and_memory_returns(
    tiny_gguf: Path, big_gguf: Path, tmp_path: Path
) -> None:
    from sakura_llamacpp.tiny_model import write_tiny_gguf

    third = write_tiny_gguf(tmp_path / "sakura-third-qwen2.5-v1.0.gguf", name="sakura-third-qwen2.5-v1.0", seed=3)
    server = spawn_sakura(tiny_gguf, tmp_path, "-m", f"big={big_gguf}", "-m", f"third={third}", "--models-max", "2")
    try:
        pid = server.process.pid
        before = _rss_bytes(pid)
        assert _post(server.port, "/v1/completions", {"model": "big", "prompt": "a", "max_tokens": 2})[0] == 200
        with_big = _rss_bytes(pid)
        assert with_big - before > 20 * 1024 * 1024, (before, with_big)
        answer = _post(server.port, "/v1/completions", {"model": "third", "prompt": "a", "max_tokens": 2})
        assert answer[0] == 200 and answer[1]["model"] == "sakura-third-qwen2.5-v1.0"
        after = _rss_bytes(pid)
        assert after - before < (with_big - before) / 2, (before, with_big, after)
        raw = server.get("/v1/models")[1]
        statuses = [card["status"]["value"] for card in json.loads(raw)["data"]]
        assert statuses == ["loaded", "unloaded", "loaded"]
    finally:
        assert server.stop() == 0
