"""Fixtures for the llamacpp engine's tests: tiny random-weight GGUF models and a loaded engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.testing import OpenEngine
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.types import SamplingParams


def chatml(text: str) -> str:
    """A Sakura v1.0 style prompt for ``text``."""
    return f"<|im_start|>user\n将下面的日文文本翻译成中文：{text}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [
    chatml("やる気マンゴスキン"),
    chatml("「おはようございます、先輩。今日もいい天気ですね」"),
    chatml("彼女は窓の外を眺めながら、小さくため息をついた。"),
    chatml("俺の名前は佐藤悠人。"),
]


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    """Four different ChatML prompts."""
    return list(PROMPTS)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 GGUF named like a Sakura v1.0 model."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
async def engine(tiny_gguf: Path) -> AsyncIterator[LlamaCppEngine]:
    """A loaded llamacpp engine serving 4 sequences of 512 tokens."""
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=4, n_ctx=512, n_batch=64))
    await engine.load(str(tiny_gguf))
    yield engine
    await engine.close()


@pytest.fixture
def greedy() -> SamplingParams:
    """Greedy decoding, 40 tokens."""
    return SamplingParams(do_sample=False, max_tokens=40)


@pytest.fixture
async def open_engine(tiny_gguf: Path) -> AsyncIterator[OpenEngine]:
    """``await open_engine(**options)``: a loaded engine on the tiny model (one slot of 512 tokens unless the
    options say otherwise), closed after the test."""
    engines: list[LlamaCppEngine] = []

    async def start(model: Path = tiny_gguf, **options: object) -> LlamaCppEngine:
        settings = {"n_parallel": 1, "n_ctx": 512, "n_batch": 64, "threads": 1, **options}
        engine = LlamaCppEngine(LlamaCppOptions(**settings))
        await engine.load(str(model))
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        await engine.close()
