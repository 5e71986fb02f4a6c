"""The core's conformance kit: the ollama engine against the local Ollama-API server (llama.cpp behind it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.options import OllamaOptions
from sakura_ollama.testing.api_server import OllamaAPIServer

from sakura_core.testing.conformance import EngineConformance


class TestOllamaEngineConformance(EngineConformance):
    """Every check of the engine contract, through the current API (``files`` create, logprobs)."""

    server_options: ClassVar[dict[str, Any]] = {}
    #: The session fixture with the model file to serve.
    model_fixture: ClassVar[str] = "tiny_gguf"

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(
        cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> AsyncIterator[OllamaEngine]:
        model: Path = request.getfixturevalue(cls.model_fixture)
        server = OllamaAPIServer(tmp_path_factory.mktemp("ollama-models"), **cls.server_options)
        await server.start()
        engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False, parallel=4, num_ctx=512))
        await engine.load(str(model))
        yield engine
        await engine.close()
        await server.stop()


class TestOllamaEngineConformanceOldServer(TestOllamaEngineConformance):
    """The same checks through a server as Ollama was before 0.5.5 and 0.12.11: a Modelfile create, no logprobs.

    Such a server's chunks are tokens only while no token splits a UTF-8 character, so running token counts are
    exact only then (test_protocol shows the lower bounds otherwise): the model is the tiny one restricted to
    whole-character tokens.
    """

    model_fixture: ClassVar[str] = "whole_character_gguf"

    server_options: ClassVar[dict[str, Any]] = {"accepts_files": False, "supports_logprobs": False, "version": "0.5.4"}
