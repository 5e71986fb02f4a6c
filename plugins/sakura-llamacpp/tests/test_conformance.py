"""The core's conformance kit, run against the llamacpp engine on a tiny random-weight Qwen2 GGUF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions

from sakura_core.testing.conformance import EngineConformance


class TestLlamaCppConformance(EngineConformance):
    #: the tiny model's weights are random: its output holds bytes that are no UTF-8, which the engine must replace
    conformance_allow_replacement_character = True

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls, tiny_gguf: Path) -> AsyncIterator[LlamaCppEngine]:
        engine = LlamaCppEngine(LlamaCppOptions(n_parallel=4, n_ctx=512))
        await engine.load(str(tiny_gguf))
        yield engine
        await engine.close()
