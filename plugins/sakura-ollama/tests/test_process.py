"""The ``ollama serve`` that the engine starts: a start that fails or hangs is one clear line, and nothing is left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sakura_ollama.api import OllamaAddress
from sakura_ollama.process import OllamaServerProcess

from sakura_core.engine import ModelLoadError


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def never_ready() -> bool:
    return False


async def test_a_server_that_exits_is_reported_with_its_last_words(tmp_path: Path) -> None:
    executable = script(tmp_path, "ollama", 'echo "Error: listen tcp 127.0.0.1:9: bind: permission denied" >&2; exit 3')
    process = OllamaServerProcess(executable, OllamaAddress.parse("127.0.0.1:9"), parallel=1)
    with pytest.raises(ModelLoadError) as caught:
        await process.start(never_ready)
    assert str(caught.value) == (
        "`ollama serve` exited with status 3 before answering; its last output: "
        "Error: listen tcp 127.0.0.1:9: bind: permission denied"
    )
    assert not process.running


async def test_a_server_that_never_answers_is_stopped(tmp_path: Path) -> None:
    marker = tmp_path / "args-and-env"
    executable = script(tmp_path, "ollama", f'echo "$@ $OLLAMA_HOST $OLLAMA_NUM_PARALLEL" > {marker}; exec sleep 60')
    process = OllamaServerProcess(executable, OllamaAddress.parse(":4321"), parallel=3)
    with pytest.raises(ModelLoadError, match=r"^`ollama serve` did not answer within 0\.5 s$"):
        await process.start(never_ready, wait_seconds=0.5)
    assert not process.running and process.process is not None
    assert marker.read_text().split() == ["serve", "127.0.0.1:4321", "3"]
    with pytest.raises(ProcessLookupError):
        os.kill(process.process.pid, 0)


class AnsweringAPI:
    """Stands in for the Ollama client: the server always answers."""

    async def version(self) -> str:
        return "0.5.4"


async def test_recover_restarts_the_server_sakura_started(tmp_path: Path) -> None:
    from sakura_ollama.engine import OllamaEngine

    executable = script(tmp_path, "ollama", "exec sleep 60")
    engine = OllamaEngine()
    engine._api = AnsweringAPI()  # type: ignore[assignment]
    engine.process = OllamaServerProcess(executable, engine.address, parallel=1)

    async def ready() -> bool:
        return True

    await engine.process.start(ready)
    first = engine.process
    assert first.process is not None
    try:
        await engine.recover("a generation has made no progress for 300 s")
        assert not first.running
        assert engine.process is not first and engine.process.running
        assert engine.process.process is not None and engine.process.process.pid != first.process.pid
    finally:
        await engine.process.stop()


async def test_recover_leaves_a_server_it_did_not_start_alone(caplog: pytest.LogCaptureFixture) -> None:
    from sakura_ollama.engine import OllamaEngine

    engine = OllamaEngine()
    engine._api = AnsweringAPI()  # type: ignore[assignment]
    await engine.recover("a generation has made no progress for 300 s")
    assert engine.process is None
    assert "was not started by sakura" in caplog.text
