"""Fixtures for the vllm engine's tests: tiny random-weight Transformers models and one loaded engine.

vLLM runs here on its CPU build. The engine is loaded once per test session (about 3 GB of memory across
vLLM's processes, 20-40 s to start), with a small KV cache and vLLM's telemetry off.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sakura_vllm.engine import VllmEngine
from sakura_vllm.options import VllmOptions
from sakura_vllm.tiny_model import build_tiny_model

from sakura_core.types import Delta, SamplingParams

# read by vLLM's engine processes when they start: a 1 GiB KV cache instead of most of the memory, no telemetry
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

#: Context length the test engine serves.
CONTEXT = 1024
#: Sequences the test engine decodes together.
SEQUENCES = 8
SOURCE_LINES = (
    "やる気マンゴスキン",
    "「おはようございます、先輩。今日もいい天気ですね」",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。",
    "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。",
    "ありがとう。本当に、ありがとう。",
    "今日もいい天気ですね",
    "先輩",
    "Hello, world!",
    "一二三四五六七八九十",
)


def chatml(text: str) -> str:
    """A Sakura v1.0 style prompt for translating ``text``."""
    return f"<|im_start|>user\n将下面的日文文本翻译成中文：{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    """Ten different ChatML translation prompts."""
    return [chatml(line) for line in SOURCE_LINES]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 whose config.json names it (sakura_name/version/quant); its directory name does not."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-random-qwen2")


@pytest.fixture(scope="session")
async def vllm_engine(tiny_model: Path) -> AsyncIterator[VllmEngine]:
    """The tiny model loaded in vLLM (eager mode, float32, 1024-token context, 8 sequences)."""
    engine = VllmEngine(VllmOptions(enforce_eager=True, dtype="float32", max_model_len=CONTEXT, max_num_seqs=SEQUENCES))
    await engine.load(str(tiny_model))
    yield engine
    await engine.close()


async def run(engine: VllmEngine, prompt: str, params: SamplingParams) -> tuple[str, Delta, int]:
    """Generate to the end: (joined text, last delta, number of deltas)."""
    pieces: list[str] = []
    last = Delta()
    count = 0
    async for delta in engine.generate(prompt, params):
        pieces.append(delta.text)
        last = delta
        count += 1
    return "".join(pieces), last, count


@pytest.fixture(scope="session")
def generate_all():
    """``run`` as a fixture: tests cannot import this module (pytest's importlib mode)."""
    return run


@pytest.fixture(scope="session")
async def prompt_outcomes(vllm_engine: VllmEngine, prompts: list[str]) -> dict[str, tuple[str, Delta]]:
    """How each prompt ends when decoded greedily for 160 tokens: by the end of text or by the limit.

    The weights are random, so which prompts end early is found out, not assumed.
    """
    outcomes = {}
    for prompt in prompts:
        text, last, _ = await run(vllm_engine, prompt, SamplingParams(do_sample=False, max_tokens=160))
        outcomes[prompt] = (text, last)
    return outcomes


@pytest.fixture(scope="session")
def ending_prompt(prompt_outcomes: dict[str, tuple[str, Delta]]) -> str:
    """A prompt the model ends (end of text) after at least two tokens, greedily."""
    for prompt, (_, last) in prompt_outcomes.items():
        if last.finish_reason == "stop" and last.completion_tokens >= 2:
            return prompt
    raise AssertionError(f"no test prompt ends by itself: {[(p[-30:], d) for p, (_, d) in prompt_outcomes.items()]}")


@pytest.fixture(scope="session")
def running_prompt(prompt_outcomes: dict[str, tuple[str, Delta]]) -> str:
    """A prompt the model keeps answering until the token limit, greedily."""
    for prompt, (_, last) in prompt_outcomes.items():
        if last.finish_reason == "length":
            return prompt
    raise AssertionError(f"every test prompt ends early: {[(p[-30:], d) for p, (_, d) in prompt_outcomes.items()]}")
