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
    lib = native.import_llama_cpp()
    real_decode = lib.llama_decode
    batches: list[list[int]] = []

    def decode(context: Any, batch: Any) -> int:
        batches.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])
        return int(real_decode(context, batch))

    monkeypatch.setattr(lib, "llama_decode", decode)
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
