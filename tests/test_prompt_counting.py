"""Counting stops at the context: a prompt that cannot fit is refused after counting a prefix of it, and huge
prompts are counted in a lane of their own, so that one client's cannot make everyone else's wait."""

from __future__ import annotations

import asyncio
import time

import pytest
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core.loaded_model import PREFIX_MIN_CHARS, LoadedModel, PromptTooLongError
from sakura_core.plugins import PluginRegistry

#: Seconds of (GIL-free) work per character counted: an 800,000-character prompt costs 0.8 s counted whole.
SECONDS_PER_CHAR = 1e-6


class SlowCounting(ReferenceEngine):
    """Counts a character as a token, taking time in proportion to the text, and remembers what it counted."""

    def __init__(self, options: ReferenceOptions | None = None) -> None:
        super().__init__(options)
        self.counted: list[int] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(len(text))
        time.sleep(len(text) * SECONDS_PER_CHAR)
        return len(text)


async def loaded(n_ctx: int) -> tuple[LoadedModel, SlowCounting]:
    engine = SlowCounting(ReferenceOptions(n_ctx=n_ctx))
    registry = PluginRegistry.create(entry_points=False)
    return await LoadedModel.load(engine, registry, "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"), engine


async def test_a_prompt_that_cannot_fit_is_counted_only_as_far_as_its_prefix() -> None:
    model, engine = await loaded(n_ctx=4096)
    with pytest.raises(PromptTooLongError, match=r"more than .* tokens .*first 65536 characters"):
        await model.prepare("x" * 800_000)
    assert engine.counted == [PREFIX_MIN_CHARS]


async def test_a_long_prompt_that_may_fit_is_still_counted_whole() -> None:
    model, engine = await loaded(n_ctx=100_000)  # 400,000 characters of prefix: this prompt is counted whole
    request = await model.prepare("x" * 90_000, max_tokens=5)
    assert request.prompt_tokens == 90_000 and engine.counted == [90_000]


async def test_huge_prompts_do_not_delay_a_normal_one() -> None:
    model, engine = await loaded(n_ctx=32_768)  # prefix of 131,072 characters
    huge = [asyncio.ensure_future(model.prepare("x" * 4_000_000)) for _ in range(4)]
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    normal = await model.prepare("x" * 5_000, max_tokens=5)
    waited = time.perf_counter() - started
    results = await asyncio.gather(*huge, return_exceptions=True)
    assert normal.prompt_tokens == 5_000
    assert all(isinstance(r, PromptTooLongError) for r in results)
    assert waited < 0.3, f"a 5,000-character prompt waited {waited:.2f} s behind the huge ones"
    assert max(engine.counted) == 131_072  # none of the huge prompts was counted whole


async def test_one_clients_many_long_prompts_do_not_hold_up_another_clients() -> None:
    model, _engine = await loaded(n_ctx=65_536)
    prompt = "x" * 40_000  # 0.04 s to count
    greedy = [asyncio.ensure_future(model.prepare(prompt, max_tokens=1, client="10.0.0.1")) for _ in range(10)]
    await asyncio.sleep(0.005)
    started = time.perf_counter()
    other = await model.prepare(prompt, max_tokens=1, client="10.0.0.2")
    waited = time.perf_counter() - started
    await asyncio.gather(*greedy)
    assert other.prompt_tokens == 40_000
    # its turn comes after at most the greedy client's count in progress and one more, not all ten
    assert waited < 0.25, f"waited {waited:.2f} s behind another client's prompts"
