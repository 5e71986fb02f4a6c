"""The prompt cache across slots and in host memory: a prompt takes the longest prefix that any slot's cells (busy or
idle) or a saved state hold, decodes only the rest, and its greedy output is exactly what it is without any reuse,
whatever happens to the cells it shares (cancelled, cut, full). The sharing tests run with a KV region per sequence
(a shared prefix is copied region to region) and with one unified KV cache (the cells are shared)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sakura_llamacpp.batch import WAIT_FOR_SHARED_TOKENS
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.prefix import common_prefix_length
from sakura_llamacpp.testing import Collected, OpenEngine, cells_of, collect, decoder_of
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.types import SamplingParams

SYSTEM = "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文。"
NAMES = ["先輩", "佐藤", "悠人", "彼女", "窓の外", "雨の音", "天気", "名前"]
LINES = [
    "「おはようございます、先輩。」",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "俺の名前は佐藤悠人。",
    "雨の音で目が覚めた。",
    "「今日もいい天気ですね」",
    "やる気マンゴスキン",
]
GREEDY = SamplingParams(do_sample=False, max_tokens=24)
LONG = SamplingParams(do_sample=False, max_tokens=150)


def glossary(book: int, entries: int = 12) -> str:
    """A glossary of its own for each book (what a translation client puts in front of every line)."""
    return "".join(
        f"{NAMES[(i + book) % len(NAMES)]}{book}{i}->{NAMES[(i * 3 + book) % len(NAMES)]}\n" for i in range(entries)
    )


def book_prompt(book: int, line: int, entries: int = 12) -> str:
    """A Sakura v1.0 prompt: system prompt and the book's glossary (the shared prefix), then one line."""
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n根据以下术语表：\n{glossary(book, entries)}"
        f"将下面的日文文本翻译成中文：{LINES[line]}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.fixture(params=[False, True], ids=["regions", "unified"])
def kv_unified(request: pytest.FixtureRequest) -> bool:
    """Each sharing test with a KV region per sequence, then with one unified cache."""
    return bool(request.param)


async def plain_text(open_engine: OpenEngine, prompt: str, params: SamplingParams = GREEDY, **options: object) -> str:
    """The greedy output of an engine that reuses nothing."""
    plain = await open_engine(cache_prompt=False, **options)
    return (await collect(plain, prompt, params)).text


async def started(engine: LlamaCppEngine, prompt: str, params: SamplingParams) -> tuple[asyncio.Task[Collected], int]:
    """A generation running in the background once its first token is out (its whole prompt is in its cells)."""
    first = asyncio.Event()
    collected = Collected()

    async def run() -> Collected:
        async for delta in engine.generate(prompt, params):
            collected.deltas.append(delta)
            first.set()
        return collected

    task = asyncio.create_task(run())
    await first.wait()
    busy = [i for i, slot in enumerate(decoder_of(engine)._slots) if slot.busy]
    return task, busy[0]


async def test_a_prefix_in_a_busy_slot_is_shared_with_a_cold_one(open_engine: OpenEngine, kv_unified: bool) -> None:
    """The issue's first shape: slot A generates; the same book's next line goes to cold slot B and takes the
    prefix from A's cells instead of decoding it."""
    engine = await open_engine(n_parallel=2, n_ctx=1024, kv_unified=kv_unified)
    first, second = book_prompt(0, 0), book_prompt(0, 1)
    running, slot_a = await started(engine, first, LONG)
    result = await collect(engine, second, GREEDY)
    shared = common_prefix_length(engine.tokenize(first), engine.tokenize(second))
    assert shared > 200
    assert result.last.cached_tokens == shared  # every token of the shared prefix, none decoded
    assert result.last.cached_tokens >= 0.9 * shared
    assert decoder_of(engine)._slots[slot_a].busy  # A kept generating meanwhile
    assert result.text == await plain_text(open_engine, second, n_ctx=1024)
    assert (await running).text == await plain_text(open_engine, first, LONG, n_ctx=1024)
    stats = engine.prompt_cache_stats()
    assert stats is not None and stats.prompt_tokens_shared == shared


async def test_a_prompt_evicted_from_the_only_slot_comes_back_from_host_memory(open_engine: OpenEngine) -> None:
    """The issue's second shape: A, then B, then A again on a one-slot server."""
    engine = await open_engine(n_ctx=1024)
    a, b = book_prompt(0, 0), book_prompt(1, 1)
    first = await collect(engine, a, GREEDY)
    await collect(engine, b, GREEDY)
    again = await collect(engine, a, GREEDY)
    tokens = engine.tokenize(a)
    assert (again.last.cached_tokens or 0) >= 0.9 * len(tokens)
    assert again.last.cached_tokens == len(tokens) - 1  # all but the last token, which gives the first output
    assert again.text == first.text == await plain_text(open_engine, a, n_ctx=1024)
    stats = engine.prompt_cache_stats()
    assert stats is not None
    assert (stats.host_cache_saves, stats.host_cache_hits) == (2, 1)  # A when B came, B when A came back
    assert stats.prompt_tokens_restored == len(tokens) - 1
    assert 0 < stats.host_cache_bytes <= 8192 * 1024 * 1024
    assert cells_of(engine)[: len(tokens)] == tokens


async def test_a_slot_that_keeps_most_of_its_prompt_saves_nothing(open_engine: OpenEngine) -> None:
    """The same book's next line keeps the system prompt and glossary in the slot and drops only the last line:
    nothing is copied to host memory. Another book's line keeps little, so the slot is saved first."""
    engine = await open_engine(n_ctx=1024)
    for line in range(3):
        await collect(engine, book_prompt(0, line), GREEDY)
    stats = engine.prompt_cache_stats()
    assert stats is not None and stats.host_cache_saves == 0
    assert stats.prompt_tokens_kept > 0
    other = await collect(engine, book_prompt(1, 3), GREEDY)
    stats = engine.prompt_cache_stats()
    assert stats is not None and stats.host_cache_saves == 1
    assert other.text == await plain_text(open_engine, book_prompt(1, 3), n_ctx=1024)


async def test_four_slots_starting_on_one_glossary_read_it_once(open_engine: OpenEngine, kv_unified: bool) -> None:
    """``sakura translate`` starting 4 slots at once: the first reads the prefix, the others wait a step and take it."""
    engine = await open_engine(n_parallel=4, n_ctx=1024, n_batch=512, kv_unified=kv_unified)
    prompts = [book_prompt(2, line) for line in range(4)]
    results = await asyncio.gather(*(collect(engine, prompt, GREEDY) for prompt in prompts))
    tokens = [engine.tokenize(prompt) for prompt in prompts]
    shared = common_prefix_length(tokens[0], tokens[1])
    assert sorted(result.last.cached_tokens or 0 for result in results)[1:] == [shared] * 3
    stats = engine.prompt_cache_stats()
    assert stats is not None
    assert stats.prompt_tokens_decoded == sum(len(t) for t in tokens) - 3 * shared  # the prefix read once
    for prompt, result in zip(prompts, results, strict=True):
        assert result.text == await plain_text(open_engine, prompt, n_ctx=1024)


async def test_a_partly_matching_prefix_is_shared_up_to_the_first_difference(
    open_engine: OpenEngine, kv_unified: bool
) -> None:
    engine = await open_engine(n_parallel=2, n_ctx=1024, kv_unified=kv_unified)
    first = book_prompt(3, 0, entries=12)
    second = book_prompt(3, 0, entries=6) + "続き"  # the glossary's first half, then a different text
    running, _ = await started(engine, first, LONG)
    result = await collect(engine, second, GREEDY)
    shared = common_prefix_length(engine.tokenize(first), engine.tokenize(second))
    assert 0 < shared < len(engine.tokenize(second)) - 20
    assert result.last.cached_tokens == shared
    assert result.text == await plain_text(open_engine, second, n_ctx=1024)
    await running


async def test_shared_cells_stay_while_the_slot_they_came_from_drops_them(
    open_engine: OpenEngine, kv_unified: bool
) -> None:
    """B takes A's prefix and generates; A is cancelled, then reused by an unrelated prompt that cuts its cells
    back: B's cells (the same llama.cpp cells) stay, and B's output does not change."""
    engine = await open_engine(n_parallel=2, n_ctx=1024, kv_unified=kv_unified)
    a, b = book_prompt(4, 0), book_prompt(4, 1)
    holder, slot_a = await started(engine, a, LONG)
    user, slot_b = await started_other(engine, b, slot_a)
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    unrelated = "<|im_start|>user\n雨の音で目が覚めた。<|im_end|>\n<|im_start|>assistant\n"
    await collect(engine, unrelated, GREEDY)  # goes to A's slot, the only free one, and drops its prefix
    assert cells_of(engine, slot_a)[:5] == engine.tokenize(unrelated)[:5]
    result = await user
    assert (result.last.cached_tokens or 0) > 200
    assert result.text == await plain_text(open_engine, b, LONG, n_ctx=1024)
    tokens = engine.tokenize(b)
    assert cells_of(engine, slot_b)[: len(tokens)] == tokens


async def started_other(engine: LlamaCppEngine, prompt: str, taken: int) -> tuple[asyncio.Task[Collected], int]:
    """Like ``started``, for a second generation beside the one in slot ``taken``."""
    task, _ = await started(engine, prompt, LONG)
    busy = [i for i, slot in enumerate(decoder_of(engine)._slots) if slot.busy and i != taken]
    return task, busy[0]


async def test_a_leader_cancelled_mid_prompt_leaves_its_follower_correct(
    tmp_path: Path, open_engine: OpenEngine, kv_unified: bool
) -> None:
    """Two prompts on one long prefix at once, read 8 tokens a step: the second follows the first's cells; the
    first is cancelled mid-prompt; the second reads the rest itself and its output does not change."""
    model = write_tiny_gguf(tmp_path / "sakura-slow-v1.0-f32.gguf", hidden=512, layers=8, heads=8, kv_heads=8)
    engine = await open_engine(model, n_parallel=2, n_ctx=1024, n_batch=8, kv_unified=kv_unified)
    leader, follower = book_prompt(5, 0, entries=24), book_prompt(5, 1, entries=24)
    decoder = decoder_of(engine)
    lead = asyncio.ensure_future(collect(engine, leader, GREEDY))
    while decoder.decode_steps < 1:  # noqa: ASYNC110 - a counter of the worker thread, no event to wait on
        await asyncio.sleep(0.001)
    follow = asyncio.ensure_future(collect(engine, follower, GREEDY))
    steps = decoder.decode_steps
    while decoder.decode_steps < steps + 6:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    lead.cancel()
    await asyncio.gather(lead, return_exceptions=True)
    result = await follow
    tokens = engine.tokenize(leader)
    kept = cells_of(engine, 0)
    assert 0 < len(kept) < len(tokens) - 8 and kept == tokens[: len(kept)]  # the leader stopped mid-prompt
    assert (result.last.cached_tokens or 0) >= len(kept)  # the follower took at least what the leader read
    assert result.text == await plain_text(open_engine, follower, model=model, n_ctx=1024)


async def test_sharing_slots_that_fill_their_context(open_engine: OpenEngine, kv_unified: bool) -> None:
    engine = await open_engine(n_parallel=2, n_ctx=512, kv_unified=kv_unified)
    to_the_end = SamplingParams(do_sample=False, max_tokens=512)
    a, b = book_prompt(6, 0), book_prompt(6, 1)
    results = await asyncio.gather(collect(engine, a, to_the_end), collect(engine, b, to_the_end))
    assert [r.last.finish_reason for r in results] == ["length", "length"]
    shared = common_prefix_length(engine.tokenize(a), engine.tokenize(b))
    # whichever came second took the other's prefix (all of it, or what was read when too little was left to wait)
    assert max(r.last.cached_tokens or 0 for r in results) >= shared - WAIT_FOR_SHARED_TOKENS
    assert sorted(len(cells_of(engine, slot)) for slot in (0, 1)) == [512, 512]  # every cell of both in use
    for prompt, result in zip((a, b), results, strict=True):
        assert result.text == await plain_text(open_engine, prompt, to_the_end)
    again = await collect(engine, book_prompt(6, 2), GREEDY)  # a full slot is cut back for the next one
    assert (again.last.cached_tokens or 0) > 200
    assert again.text == await plain_text(open_engine, book_prompt(6, 2))


async def test_without_cache_prompt_nothing_is_shared_or_saved(open_engine: OpenEngine) -> None:
    engine = await open_engine(n_parallel=2, n_ctx=1024, cache_prompt=False)
    running, _ = await started(engine, book_prompt(0, 0), LONG)
    result = await collect(engine, book_prompt(0, 1), GREEDY)
    assert result.last.cached_tokens == 0
    await collect(engine, book_prompt(1, 2), GREEDY)
    assert (await collect(engine, book_prompt(0, 1), GREEDY)).last.cached_tokens == 0
    assert engine.prompt_cache_stats() is None
    await running


async def test_without_sharing_only_the_host_cache_gives_a_prefix(open_engine: OpenEngine) -> None:
    engine = await open_engine(n_parallel=2, n_ctx=1024, share_prompt_cache=False)
    running, _ = await started(engine, book_prompt(0, 0), LONG)
    assert (await collect(engine, book_prompt(0, 1), GREEDY)).last.cached_tokens == 0
    await running
    one = await open_engine(n_ctx=1024, share_prompt_cache=False)
    a = book_prompt(0, 0)
    await collect(one, a, GREEDY)
    await collect(one, book_prompt(1, 1), GREEDY)
    again = await collect(one, a, GREEDY)
    assert again.last.cached_tokens == len(one.tokenize(a)) - 1
    assert again.text == await plain_text(open_engine, a, n_ctx=1024)


async def test_the_host_cache_keeps_within_its_limit_and_drops_the_least_recently_used(
    open_engine: OpenEngine,
) -> None:
    engine = await open_engine(n_ctx=1024, cache_ram=1)
    books = range(16)
    for book in books:
        await collect(engine, book_prompt(book, 0, entries=20), GREEDY)
    stats = engine.prompt_cache_stats()
    assert stats is not None
    assert stats.host_cache_saves == len(books) - 1  # every book but the last (still in the slot) was saved
    assert 0 < stats.host_cache_bytes <= 1024 * 1024
    assert stats.host_cache_evictions > 0 and stats.host_cache_entries < stats.host_cache_saves
    recent, oldest = book_prompt(books[-2], 0, entries=20), book_prompt(books[0], 0, entries=20)
    assert (await collect(engine, recent, GREEDY)).last.cached_tokens == len(engine.tokenize(recent)) - 1
    dropped = await collect(engine, oldest, GREEDY)
    assert (dropped.last.cached_tokens or 0) < 100  # evicted: only the system prompt is found again
    assert dropped.text == await plain_text(open_engine, oldest, n_ctx=1024)


async def test_saving_and_restoring_take_less_than_a_decode_step(tmp_path: Path, open_engine: OpenEngine) -> None:
    """Slot 0 generates while slot 1 saves and restores prompts: the decode thread never waits on the host cache
    longer than its median step."""
    model = write_tiny_gguf(tmp_path / "sakura-slow-v1.0-f32.gguf", hidden=512, layers=8, heads=8, kv_heads=8)
    engine = await open_engine(model, n_parallel=2, n_ctx=1024, n_batch=64)
    running, _ = await started(engine, "<|im_start|>user\n長い翻訳<|im_end|>\n<|im_start|>assistant\n", LONG)
    for book in (0, 1, 0, 1):
        await collect(engine, book_prompt(book, 0, entries=20), GREEDY)
    await running
    stats = engine.prompt_cache_stats()
    assert stats is not None and stats.host_cache_hits == 2
    assert 0 < stats.longest_transfer_seconds <= stats.median_step_seconds


async def test_a_state_saved_into_the_spare_buffer_restores_the_same_once_moved_to_its_own(
    open_engine: OpenEngine,
) -> None:
    """A save copies into the spare buffer (made ahead, as large as a full context); the buffer thread then gives
    the state a buffer of its own size, between steps. The restore from that buffer gives the same output."""
    engine = await open_engine(n_ctx=1024)
    a = book_prompt(0, 0)
    first = await collect(engine, a, GREEDY)
    await collect(engine, book_prompt(1, 1), GREEDY)  # A is saved, most likely into the spare
    host = decoder_of(engine)._host_cache
    assert host is not None
    for _ in range(200):  # each request's steps let the buffer thread work; each round takes what it made
        entries = list(host._entries.values())
        if entries and all(not entry.on_spare for entry in entries):
            break
        await collect(engine, book_prompt(1, 1), SamplingParams(do_sample=False, max_tokens=1))
    assert entries and all(not entry.on_spare for entry in entries)
    again = await collect(engine, a, GREEDY)
    assert again.last.cached_tokens == len(engine.tokenize(a)) - 1
    assert again.text == first.text


def test_common_prefix_length_agrees_with_a_token_by_token_count() -> None:
    import random

    def counted(a: list[int], b: list[int]) -> int:
        n = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            n += 1
        return n

    rng = random.Random(20)
    for _ in range(3000):
        a = [rng.randrange(3) for _ in range(rng.randrange(0, 1200))]
        b = a[: rng.randrange(0, len(a) + 1)] + [rng.randrange(3) for _ in range(rng.randrange(0, 600))]
        assert common_prefix_length(a, b) == counted(a, b) == common_prefix_length(b, a)
