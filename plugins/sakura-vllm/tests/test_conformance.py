"""The core's conformance kit on the vllm engine (real vLLM, CPU build, tiny random Qwen2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sakura_vllm.engine import VllmEngine

from sakura_core.testing.conformance import EngineConformance


class TestVllmEngineConformance(EngineConformance):
    """Every check of the engine contract, on the session's loaded vllm engine."""

    #: the tiny model's weights are random: its output holds bytes that are no UTF-8, which the engine must replace
    conformance_allow_replacement_character = True

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls, vllm_engine: VllmEngine) -> AsyncIterator[VllmEngine]:
        yield vllm_engine
