"""Fixtures for the ollama engine's tests: tiny GGUF models, a local Ollama-API server, engines pointed at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sakura_llamacpp.tiny_model import write_tiny_gguf
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.options import OllamaOptions
from sakura_ollama.testing import EngineFactory
from sakura_ollama.testing.api_server import OllamaAPIServer
from sakura_ollama.testing.real_server import RealOllama, find_test_ollama, start_real_ollama
from sakura_ollama.testing.whole_characters import write_whole_character_copy


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of tiny models shared by the session."""
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_gguf(models_dir: Path) -> Path:
    """A tiny random-weight Qwen2 GGUF named like a Sakura v1.0 model (sakura-tiny-qwen2-v1.0-f32.gguf)."""
    return write_tiny_gguf(models_dir)


@pytest.fixture(scope="session")
def ending_gguf(models_dir: Path) -> Path:
    """A tiny model that ends its answers: ``<|im_end|>`` wins where the model would emit token 300."""
    return write_tiny_gguf(models_dir / "sakura-ending-v1.0-f32.gguf", seed=3, eos_like_token=300)


@pytest.fixture(scope="session")
def whole_character_gguf(models_dir: Path, tiny_gguf: Path) -> Path:
    """The tiny model, silenced on every token that ends inside a UTF-8 character (see whole_characters)."""
    path, _ = write_whole_character_copy(tiny_gguf, models_dir / "sakura-whole-qwen2-v1.0-f32.gguf")
    return path


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[OllamaAPIServer]:
    """A local Ollama-API server of the current API (``files`` create, logprobs)."""
    server = OllamaAPIServer(tmp_path / "ollama-models")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_engine() -> AsyncIterator[EngineFactory]:
    """Load an OllamaEngine against a server: ``await make_engine(server, model, **options)``; closed after."""
    engines: list[OllamaEngine] = []

    async def make(server: OllamaAPIServer | str, model: str | Path, /, **options: Any) -> OllamaEngine:
        host = server if isinstance(server, str) else server.url
        model_version = options.pop("model_version", None)
        options.setdefault("spawn", False)
        engine = OllamaEngine(OllamaOptions(ollama_host=host, **options))
        engines.append(engine)
        await engine.load(str(model), model_version)
        return engine

    yield make
    for engine in engines:
        await engine.close()


@pytest.fixture(scope="session")
def ollama_executable() -> str:
    """The real Ollama executable; fails (never skips) with the install command when there is none."""
    return find_test_ollama()


@pytest.fixture(scope="session")
def ollama_0_9_executable() -> str:
    """The real Ollama 0.9 executable (the current ``/api/create``); fails (never skips) like ``ollama_executable``."""
    return find_test_ollama(current_api=True)


@pytest.fixture(scope="session")
def real_server(ollama_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOllama]:
    """A real ``ollama serve`` running 4 sequences at once, sandboxed in a temporary HOME."""
    server = start_real_ollama(tmp_path_factory.mktemp("ollama-home"), parallel=4, executable=ollama_executable)
    yield server
    server.stop()


@pytest.fixture
def ollama_on_path(ollama_executable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ollama`` first on PATH, with HOME and OLLAMA_MODELS in a temporary directory (returned)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ollama").symlink_to(os.path.abspath(ollama_executable))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "home" / "models"))
    return tmp_path / "home"
