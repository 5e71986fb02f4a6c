"""Prompt-prefix reuse: a slot keeps its KV cells, a new request decodes only what its cache lacks, and the output
is exactly what it is without reuse, whatever happened to the slot before (cancelled, reused, full)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sakura_llamacpp.batch import common_prefix_length
from sakura_llamacpp.testing import Collected, OpenEngine, cells_of, collect, decoder_of
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.types import SamplingParams

SYSTEM = "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文。"
GLOSSARY = "根据以下术语表（可以为空）：\n先輩->前辈\n佐藤->佐藤\n"
LINES = [
    "「おはようございます、先輩。」",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "俺の名前は佐藤悠人。",
    "雨の音で目が覚めた。",
    "「今日もいい天気ですね」",
]
GREEDY = SamplingParams(do_sample=False, max_tokens=24)


def client_prompt(index: int) -> str:
    """What LunaTranslator/GalTransl send for line ``index``: the same system prompt and glossary, the lines
    before it as context, then the new line."""
    context = "\n".join(LINES[:index])
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{GLOSSARY}上文：\n{context}\n"
        f"将下面的日文文本翻译成中文：{LINES[index]}<|im_end|>\n<|im_start|>assistant\n"
    )


async def test_reuse_gives_the_same_greedy_output_as_no_reuse(open_engine: OpenEngine) -> None:
    cached = await open_engine(n_parallel=2)
    plain = await open_engine(n_parallel=2, cache_prompt=False)
    previous: list[int] = []
    for index in range(len(LINES)):
        prompt = client_prompt(index)
        tokens = cached.tokenize(prompt)
        with_reuse, without = await collect(cached, prompt, GREEDY), await collect(plain, prompt, GREEDY)
        assert with_reuse.text == without.text
        assert [d.completion_tokens for d in with_reuse.deltas] == [d.completion_tokens for d in without.deltas]
        assert {d.cached_tokens for d in without.deltas} == {0}
        # the slot that served the previous line is chosen again: its prompt is this one's prefix up to the new line
        expected = common_prefix_length(previous, tokens)
        assert {d.cached_tokens for d in with_reuse.deltas} == {expected}
        assert index == 0 or expected > len(tokens) // 2
        previous = tokens
    assert plain.slot_caches() is None
    assert [cache.tokens_cached for cache in cached.slot_caches() or []].count(0) == 1  # one slot never used


async def test_a_prompt_that_is_entirely_cached_still_decodes_its_last_token(open_engine: OpenEngine) -> None:
    engine = await open_engine()
    prompt = client_prompt(2)
    first = await collect(engine, prompt, GREEDY)
    again = await collect(engine, prompt, GREEDY)
    assert again.text == first.text
    assert again.last.cached_tokens == engine.count_tokens(prompt) - 1
    assert again.last.completion_tokens == GREEDY.max_tokens


async def test_a_cancelled_prefill_leaves_only_the_prefix_it_decoded(tmp_path: Path, open_engine: OpenEngine) -> None:
    """Cancelled while its prompt is being decoded (8 tokens a step): the slot keeps exactly the decoded prefix,
    llama.cpp holds exactly those cells, and the next request reuses only them."""
    model = write_tiny_gguf(tmp_path / "sakura-slow-v1.0-f32.gguf", hidden=512, layers=8, heads=8, kv_heads=8)
    engine = await open_engine(model, n_ctx=1024, n_batch=8, threads=1)
    long_prompt = client_prompt(4).replace(SYSTEM, SYSTEM * 6)
    tokens = engine.tokenize(long_prompt)
    assert len(tokens) > 300
    decoder = decoder_of(engine)
    steps = decoder.decode_steps
    stream = engine.generate(long_prompt, GREEDY)
    consumer = asyncio.ensure_future(stream.__anext__())
    while decoder.decode_steps < steps + 3:  # noqa: ASYNC110 - a counter of the worker thread, no event to wait on
        await asyncio.sleep(0.001)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await stream.aclose()  # type: ignore[attr-defined]
    assert engine.active_generations == 0
    kept = cells_of(engine)
    assert 0 < len(kept) < len(tokens) - 8  # cut in the middle of the prompt
    assert kept == tokens[: len(kept)]  # only tokens that were decoded, each in its place
    plain = await open_engine(model, n_ctx=1024, n_batch=64, threads=1, cache_prompt=False)
    reused = await collect(engine, long_prompt, GREEDY)
    assert reused.last.cached_tokens == len(kept)
    assert reused.text == (await collect(plain, long_prompt, GREEDY)).text


async def test_a_generation_cancelled_midway_leaves_prompt_and_output_cached(open_engine: OpenEngine) -> None:
    engine = await open_engine()
    plain = await open_engine(cache_prompt=False)
    prompt = client_prompt(1)
    received = Collected()
    stream = engine.generate(prompt, SamplingParams(do_sample=False, max_tokens=60))
    async for delta in stream:
        received.deltas.append(delta)
        if delta.completion_tokens == 10:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    tokens = engine.tokenize(prompt)
    kept = cells_of(engine)
    assert kept[: len(tokens)] == tokens
    # the output tokens fed back are cached too: the 9 before the tenth the client saw, and those the worker
    # generated before it saw the cancellation (never the 60th: the last sampled token is not fed back)
    assert len(tokens) + 9 <= len(kept) < len(tokens) + 60
    again = await collect(engine, prompt, GREEDY)
    assert again.last.cached_tokens == len(tokens) - 1
    assert again.text == (await collect(plain, prompt, GREEDY)).text


async def test_a_slot_reused_by_other_prompts_drops_what_differs(open_engine: OpenEngine) -> None:
    engine = await open_engine(cache_ram=0)  # the slot's own cells only: no host-memory cache to restore from
    plain = await open_engine(cache_prompt=False)
    other = "<|im_start|>user\n将下面的日文文本翻译成中文：やる気マンゴスキン<|im_end|>\n<|im_start|>assistant\n"
    sequence = [client_prompt(3), other, client_prompt(2), client_prompt(3)]
    for prompt in sequence:
        before = cells_of(engine)
        result = await collect(engine, prompt, GREEDY)
        tokens = engine.tokenize(prompt)
        assert result.last.cached_tokens == min(common_prefix_length(before, tokens), len(tokens) - 1)
        assert result.text == (await collect(plain, prompt, GREEDY)).text
        assert cells_of(engine)[: len(tokens)] == tokens


async def test_a_full_context_is_cut_back_for_the_next_prompt(open_engine: OpenEngine) -> None:
    engine = await open_engine(n_ctx=256)
    plain = await open_engine(n_ctx=256, cache_prompt=False)
    prompt = client_prompt(1)
    full = await collect(engine, prompt, SamplingParams(do_sample=False, max_tokens=256))
    assert full.last.finish_reason == "length"
    assert len(cells_of(engine)) == 256  # every cell of the sequence is in use
    longer = client_prompt(2)
    result = await collect(engine, longer, GREEDY)
    assert result.last.cached_tokens == common_prefix_length(engine.tokenize(prompt), engine.tokenize(longer))
    assert result.text == (await collect(plain, longer, GREEDY)).text


async def test_a_request_goes_to_the_slot_with_the_longest_shared_prefix(open_engine: OpenEngine) -> None:
    engine = await open_engine(n_parallel=3)
    other = "<|im_start|>user\n将下面的日文文本翻译成中文：やる気マンゴスキン<|im_end|>\n<|im_start|>assistant\n"
    await asyncio.gather(collect(engine, client_prompt(1), GREEDY), collect(engine, other, GREEDY))
    caches = engine.slot_caches() or []
    assert sorted(cache.tokens_cached > 0 for cache in caches) == [False, True, True]
    line_one = engine.tokenize(client_prompt(1))
    slot_of_line_one = next(i for i, slot in enumerate(decoder_of(engine)._slots) if slot.cells[:20] == line_one[:20])
    result = await collect(engine, client_prompt(3), GREEDY)
    assert (result.last.cached_tokens or 0) > 0
    assert (engine.slot_caches() or [])[slot_of_line_one].prompt_tokens_cached == result.last.cached_tokens
    # a prompt that shares too little with every cache goes to the least recently used slot, the unused one
    fresh = "雨の音で目が覚めた。"
    assert (await collect(engine, fresh, GREEDY)).last.cached_tokens == 0
    assert all(cache.tokens_cached > 0 for cache in engine.slot_caches() or [])


async def test_without_cache_prompt_every_slot_is_emptied(open_engine: OpenEngine) -> None:
    engine = await open_engine(n_parallel=2, cache_prompt=False)
    await asyncio.gather(*(collect(engine, client_prompt(i), GREEDY) for i in (1, 2)))
    result = await collect(engine, client_prompt(2), GREEDY)
    assert result.last.cached_tokens == 0
    assert cells_of(engine, 0) == [] and cells_of(engine, 1) == []
