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
