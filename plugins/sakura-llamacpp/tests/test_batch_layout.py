"""How steps are laid out for llama.cpp: with a KV region per sequence it computes a run of consecutive sequence ids
in one pass over the weights, and needs one more pass for every break in the batch's order or in the busy ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sakura_llamacpp import native
from sakura_llamacpp.batch import BatchDecoder, id_runs
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.testing import collect

from sakura_core.types import SamplingParams

LONG = SamplingParams(do_sample=False, max_tokens=400)
SHORT = SamplingParams(do_sample=False, max_tokens=4)


def prompt(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture
async def engine(tiny_gguf: Path) -> AsyncIterator[LlamaCppEngine]:
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=4, n_ctx=512, threads=1, cache_prompt=True))
    await engine.load(str(tiny_gguf))
    yield engine
    await engine.close()


def decoder_of(engine: LlamaCppEngine) -> BatchDecoder:
    decoder = engine._decoder
    assert isinstance(decoder, BatchDecoder)
    return decoder


def record_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """From now on, each ``llama_decode``'s batch as the sequence id of each of its tokens, in order."""
    lib = native.import_llama_cpp()
    real_decode = lib.llama_decode
    batches: list[list[int]] = []

    def decode(context: Any, batch: Any) -> int:
        batches.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])
        return int(real_decode(context, batch))

    monkeypatch.setattr(lib, "llama_decode", decode)
    return batches


async def generating(engine: LlamaCppEngine, text: str) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """A long generation running in the background, and an event set once it has produced a token."""
    started = asyncio.Event()

    async def run() -> None:
        async for _ in engine.generate(prompt(text), LONG):
            started.set()

    task = asyncio.create_task(run())
    await started.wait()
    return task, started


def test_id_runs() -> None:
    assert [id_runs(ids) for ids in (set(), {0}, {0, 1, 2}, {0, 2}, {0, 1, 3}, {3, 1})] == [0, 1, 1, 2, 2, 2]


async def test_each_step_lists_its_sequences_by_id(engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots 0, 2 and 3 generate while a new prompt goes into slot 1: the batch still runs 0, 1, 2, 3."""
    batches = record_batches(monkeypatch)
    running = [await generating(engine, text) for text in ("一つ目", "二つ目", "三つ目", "四つ目")]
    slots = decoder_of(engine)._slots
    assert [slot.request is not None for slot in slots] == [True] * 4
    running[1][0].cancel()  # frees slot 1
    await asyncio.gather(running[1][0], return_exceptions=True)
    before = len(batches)
    newcomer = asyncio.create_task(collect(engine, prompt("割り込みの新しい依頼です。" * 3), SHORT))
    await newcomer
    for task, _ in running:
        task.cancel()
    await asyncio.gather(*(task for task, _ in running), return_exceptions=True)
    mixed = [ids for ids in batches[before:] if len(ids) > 4 and set(ids) == {0, 1, 2, 3}]
    assert mixed, "no step carried the newcomer's prompt beside the three running sequences"
    assert all(ids == sorted(ids) for ids in batches), [ids for ids in batches if ids != sorted(ids)][:3]


async def test_a_new_request_keeps_the_busy_slots_together(engine: LlamaCppEngine) -> None:
    """With slot 0 busy, a request that matches no cache goes to slot 1 even when slot 2 was used less recently."""
    first, _ = await generating(engine, "長く続く翻訳")  # slot 0
    await collect(engine, prompt("ひとつめの短い依頼"), SHORT)  # slot 1, then free again
    slots = decoder_of(engine)._slots
    assert slots[1].cells and not slots[2].cells  # slot 2 was never used: the least recently used one
    unrelated = "雨の音で目が覚めた。"  # no prompt format: shares no tokens with any cache
    await collect(engine, unrelated, SHORT)
    assert slots[1].cells[:5] == engine.tokenize(unrelated)[:5]
    assert not slots[2].cells
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_prompts_arriving_together_finish_one_step_after_another(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU a step reads the earliest prompt whole and a later one only within ``--n-ubatch``: the first
    prompt's first token does not wait for the others' prompts (they would not come any sooner). Greedy output is
    the same as one at a time."""
    options = LlamaCppOptions(n_parallel=3, n_ctx=512, n_batch=512, n_ubatch=64, threads=1, cache_prompt=False)
    engine = LlamaCppEngine(options)
    await engine.load(str(tiny_gguf))
    try:
        line = "彼女は窓の外を眺めながら、小さくため息をついた。"
        texts = [prompt(f"{n}番目の依頼です。" + line * 3) for n in "一二三"]
        alone = [(await collect(engine, text, SHORT)).text for text in texts]
        batches = record_batches(monkeypatch)
        decoder = decoder_of(engine)
        submit, held = decoder.submit, []

        def submit_together(request: Any) -> None:  # all three reach the worker in the same round
            held.append(request)
            if len(held) == len(texts):
                with decoder._cond:
                    for each in held:
                        submit(each)

        monkeypatch.setattr(decoder, "submit", submit_together)
        together = await asyncio.gather(*(collect(engine, text, SHORT) for text in texts))
        assert [result.text for result in together] == alone
        lengths = [len(engine.tokenize(text)) for text in texts]
        assert all(length > 64 for length in lengths)
        reading = [batch for batch in batches if len(batch) > len(texts)]  # the steps that read prompts
        assert len(reading) == len(texts)  # one prompt finished per step ...
        for batch in reading:
            counts = sorted(batch.count(seq) for seq in set(batch))
            assert counts[-1] > 64 and sum(counts[:-1]) <= 64  # ... and the others' tokens within n_ubatch
    finally:
        await engine.close()
