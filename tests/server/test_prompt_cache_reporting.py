"""Cached prompt tokens, as an engine with a prompt cache reports them: usage, /completion timings, /slots, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sakura_core.types import Delta, SamplingParams, SlotCache

from .test_metrics import launcher_parse, samples

USER = {"role": "user", "content": "こんにちは"}


def report_cache(engine: Any) -> None:
    """Make the reference engine say that the first half of every prompt came from its cache."""
    generate = engine.generate

    async def cached_generate(prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for piece in generate(prompt, params):  # one str per token; the prompt is one token per character
            yield Delta(piece, cached_tokens=len(prompt) // 2)

    engine.generate = cached_generate
    engine.slot_caches = lambda: [SlotCache(tokens_cached=10 * i, prompt_tokens_cached=i) for i in range(4)]


async def test_usage_timings_slots_and_metrics_carry_the_cached_tokens(server, api) -> None:
    report_cache(server.engine)
    chat = (await api.post("/v1/chat/completions", {"messages": [USER], "max_tokens": 5})).json()
    usage = chat["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": usage["prompt_tokens"] // 2}
    streamed = await api.post(
        "/v1/completions",
        {"prompt": "abcdefgh", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert streamed.sse().json()[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    native = (await api.post("/completion", {"prompt": "abcdefghij", "n_predict": 3})).json()
    assert (native["timings"]["cache_n"], native["timings"]["prompt_n"], native["tokens_evaluated"]) == (5, 5, 10)
    slots = (await api.get("/slots")).json()
    assert [s["tokens_cached"] for s in slots] == [0, 10, 20, 30]
    assert [s["n_prompt_tokens_cache"] for s in slots] == [0, 1, 2, 3]
    text = (await api.get("/metrics")).text
    prompts = [usage["prompt_tokens"], 8, 10]
    cached = sum(p // 2 for p in prompts)
    assert samples(text)["sakura_prompt_tokens_total"] == sum(prompts)
    assert samples(text)["sakura_prompt_tokens_cached_total"] == cached
    parsed = launcher_parse(text)
    assert parsed["prompt_tokens_cached_total"] == cached
    assert parsed["prompt_tokens_total"] == sum(prompts) - cached  # processed, as llama-server counts them


async def test_an_engine_without_a_prompt_cache_reports_none(server, api) -> None:
    chat = (await api.post("/v1/chat/completions", {"messages": [USER], "max_tokens": 5})).json()
    assert "prompt_tokens_details" not in chat["usage"]
    native = (await api.post("/completion", {"prompt": "abc", "n_predict": 2})).json()
    assert "cache_n" not in native["timings"] and native["timings"]["prompt_n"] == 3
    slots = (await api.get("/slots")).json()
    assert all("tokens_cached" not in s and "n_prompt_tokens_cache" not in s for s in slots)
    assert samples((await api.get("/metrics")).text)["sakura_prompt_tokens_cached_total"] == 0
