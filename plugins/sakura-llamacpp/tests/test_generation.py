"""Generation through real llama.cpp: limits, stop strings, end of sequence, sampling, UTF-8, batching."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import llama_cpp
import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.native import Tokenizer
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.testing import Collected, collect
from sakura_llamacpp.text_stream import TextStream
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.engine import EngineError
from sakura_core.types import SamplingParams


async def test_greedy_is_deterministic_and_counts_tokens(engine: LlamaCppEngine, prompts: list[str]) -> None:
    params = SamplingParams(do_sample=False, max_tokens=40)
    first = await collect(engine, prompts[0], params)
    second = await collect(engine, prompts[0], params)
    assert first.text == second.text
    assert first.text  # the random model says something
    assert [d.completion_tokens for d in first.deltas] == list(range(1, 41))
    assert all(d.prompt_tokens == engine.count_tokens(prompts[0]) for d in first.deltas)
    assert first.last.finish_reason == "length"
    assert all(d.finish_reason is None for d in first.deltas[:-1])


@pytest.mark.parametrize("max_tokens", [1, 2, 7, 33])
async def test_max_tokens_is_exact(engine: LlamaCppEngine, prompts: list[str], max_tokens: int) -> None:
    full = await collect(engine, prompts[1], SamplingParams(do_sample=False, max_tokens=60))
    cut = await collect(engine, prompts[1], SamplingParams(do_sample=False, max_tokens=max_tokens))
    assert cut.last.completion_tokens == max_tokens
    assert cut.last.finish_reason == "length"
    assert len(cut.deltas) == max_tokens
    assert full.text.startswith(cut.text)


async def test_stop_string_across_tokens_is_not_emitted(engine: LlamaCppEngine, prompts: list[str]) -> None:
    full = await collect(engine, prompts[2], SamplingParams(do_sample=False, max_tokens=60))
    # a stop string taken from the middle of the output: its characters come from several tokens
    stop = full.text[12:17]
    assert len(stop) == 5
    cut = await collect(engine, prompts[2], SamplingParams(do_sample=False, max_tokens=60, stop=[stop, "never"]))
    expected = full.text[: full.text.find(stop)]
    assert cut.text == expected
    assert stop not in cut.text
    assert cut.last.finish_reason == "stop"
    assert cut.last.completion_tokens < 60


async def test_end_of_sequence_stops_and_is_not_counted(tmp_path: Path, prompts: list[str]) -> None:
    """A model whose <|im_end|> wins where it would emit token X ends its output right before X."""
    plain = write_tiny_gguf(tmp_path / "sakura-plain-v1.0-f32.gguf", seed=7)
    llm = llama_cpp.Llama(str(plain), n_ctx=256, verbose=False)
    prompt_tokens = llm.tokenize(prompts[0].encode(), add_bos=False, special=True)
    tokens = []
    for token in llm.generate(prompt_tokens, temp=0.0, top_k=1):
        tokens.append(token)
        if len(tokens) == 30:
            break
    del llm
    cut_at = 12
    token = tokens[cut_at]
    first = tokens.index(token)
    ending = write_tiny_gguf(tmp_path / "sakura-ending-v1.0-f32.gguf", seed=7, eos_like_token=token)
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=256))
    await engine.load(str(ending))
    try:
        result = await collect(engine, prompts[0], SamplingParams(do_sample=False, max_tokens=30))
        tokenizer = engine._tokenizer
        assert isinstance(tokenizer, Tokenizer)
        expected = b"".join(tokenizer.piece(t) for t in tokens[:first]).decode("utf-8", errors="replace")
    finally:
        await engine.close()
    assert result.last.finish_reason == "stop"
    assert result.last.completion_tokens == first
    assert expected.startswith(result.text)  # an unfinished last character is dropped, never guessed
    assert len(expected) - len(result.text) <= 1


async def test_seeded_sampling_is_reproducible(engine: LlamaCppEngine, prompts: list[str]) -> None:
    def params(seed: int) -> SamplingParams:
        return SamplingParams(temperature=1.0, top_p=1.0, top_k=0, seed=seed, max_tokens=30)

    a = await collect(engine, prompts[0], params(1))
    b = await collect(engine, prompts[0], params(1))
    c = await collect(engine, prompts[0], params(2))
    greedy = await collect(engine, prompts[0], SamplingParams(do_sample=False, max_tokens=30))
    assert a.text == b.text
    assert a.text != c.text
    assert a.text != greedy.text


async def test_top_k_one_is_greedy_and_temperature_zero_is_greedy(engine: LlamaCppEngine, prompts: list[str]) -> None:
    greedy = await collect(engine, prompts[3], SamplingParams(do_sample=False, max_tokens=30))
    top1 = await collect(engine, prompts[3], SamplingParams(temperature=1.5, top_k=1, top_p=1.0, max_tokens=30))
    cold = await collect(engine, prompts[3], SamplingParams(temperature=0.0, max_tokens=30))
    assert top1.text == greedy.text == cold.text


async def test_penalties_change_greedy_output(engine: LlamaCppEngine, prompts: list[str]) -> None:
    plain = await collect(engine, prompts[1], SamplingParams(do_sample=False, max_tokens=40))
    results = [
        await collect(engine, prompts[1], SamplingParams(do_sample=False, max_tokens=40, **penalty))
        for penalty in ({"repetition_penalty": 1.8}, {"frequency_penalty": 2.0}, {"presence_penalty": 2.0})
    ]
    for result in results:
        assert result.text != plain.text
        assert result.last.completion_tokens == 40


def test_text_stream_joins_characters_split_across_tokens(engine: LlamaCppEngine) -> None:
    """Real token pieces of rare characters are single bytes; the stream only emits whole characters."""
    tokenizer = engine._tokenizer
    assert isinstance(tokenizer, Tokenizer)
    text = "鬱蒼とした森で龘𠀋を見た"
    tokens = tokenizer.tokenize(text, special=False)
    pieces = [tokenizer.piece(t) for t in tokens]
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # some characters really are split
    stream = TextStream(stop=[])
    emitted = [stream.feed(p) for p in pieces]
    assert "".join(emitted) + stream.finish() == text
    assert all("\ufffd" not in e for e in emitted)


def test_text_stream_drops_an_unfinished_character_and_holds_stop_prefixes() -> None:
    stream = TextStream(stop=["<|im_end|>"])
    assert stream.feed("龘".encode()[:2]) == ""
    assert stream.feed(b"ab<|im") == "\ufffdab"  # bytes that can never finish the character
    assert stream.finish() == "<|im"
    stream = TextStream(stop=[])
    assert stream.feed(b"x" + "龘".encode()[:1]) == "x"
    assert stream.finish() == ""


async def test_batched_greedy_equals_solo(engine: LlamaCppEngine, prompts: list[str]) -> None:
    params = SamplingParams(do_sample=False, max_tokens=48)
    solo = [await collect(engine, p, params) for p in prompts]
    steps_before = engine._decoder.decode_steps
    sequences_before = engine._decoder.decoded_sequences
    together = await asyncio.gather(*(collect(engine, p, params) for p in prompts))
    steps = engine._decoder.decode_steps - steps_before
    sequences = engine._decoder.decoded_sequences - sequences_before
    assert [r.text for r in together] == [r.text for r in solo]
    assert [r.last.completion_tokens for r in together] == [48] * 4
    assert len({r.text for r in solo}) == 4  # different prompts, different outputs: no mixing possible unseen
    assert sequences / steps > 3  # the four sequences really shared decode steps


async def test_a_new_request_joins_the_running_batch(engine: LlamaCppEngine, prompts: list[str]) -> None:
    params = SamplingParams(do_sample=False, max_tokens=200)
    solo = await collect(engine, prompts[2], SamplingParams(do_sample=False, max_tokens=20))
    running = asyncio.Event()

    async def long_generation() -> Collected:
        result = Collected()
        async for delta in engine.generate(prompts[0], params):
            result.deltas.append(delta)
            if delta.completion_tokens == 5:
                running.set()
        return result

    first = asyncio.create_task(long_generation())
    await running.wait()
    late = await collect(engine, prompts[2], SamplingParams(do_sample=False, max_tokens=20))
    assert not first.done()  # it joined while the first one was still generating
    assert late.text == solo.text
    assert (await first).last.completion_tokens == 200


async def test_cancelling_one_of_four_streams_leaves_the_others_intact(
    engine: LlamaCppEngine, prompts: list[str]
) -> None:
    params = SamplingParams(do_sample=False, max_tokens=80)
    solo = [await collect(engine, p, params) for p in prompts]

    async def stream_and_cancel() -> int:
        received = 0
        stream = engine.generate(prompts[1], params)
        async for _ in stream:
            received += 1
            if received == 5:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return received

    others = [asyncio.create_task(collect(engine, p, params)) for i, p in enumerate(prompts) if i != 1]
    assert await stream_and_cancel() == 5
    results = await asyncio.gather(*others)
    assert [r.text for r in results] == [solo[i].text for i in (0, 2, 3)]
    assert engine.active_generations == 0


async def test_task_cancellation_frees_the_sequence(engine: LlamaCppEngine, prompts: list[str]) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.generate(prompts[0], SamplingParams(do_sample=False, max_tokens=400)):
            started.set()

    tasks = [asyncio.create_task(consume()) for _ in range(6)]  # more than the 4 slots: two wait
    await started.wait()
    deadline = time.monotonic() + 10  # each tokenises its prompt in a thread before it queues
    while engine.active_generations < 6:
        assert time.monotonic() < deadline, f"{engine.active_generations} of 6 generations reached the engine"
        await asyncio.sleep(0.01)
    assert engine.active_generations == 6
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert engine.active_generations == 0
    # every slot is free again and its KV cells empty: four full generations still fit and are correct
    params = SamplingParams(do_sample=False, max_tokens=30)
    solo = await collect(engine, prompts[3], params)
    again = await asyncio.gather(*(collect(engine, prompts[3], params) for _ in range(4)))
    assert {r.text for r in again} == {solo.text}


async def test_decoding_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """A long prompt decoded in one llama_decode call: the event loop keeps ticking meanwhile."""
    model = write_tiny_gguf(tmp_path / "sakura-medium-v1.0-f32.gguf", hidden=512, layers=8, heads=8, kv_heads=8)
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=1024, n_batch=1024, threads=1))
    await engine.load(str(model))
    prompt = "将下面的日文文本翻译成中文：" + "彼女は窓の外を眺めながら、小さくため息をついた。" * 25
    assert 600 < engine.count_tokens(prompt) < 1000
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    try:
        async for _ in engine.generate(prompt, SamplingParams(do_sample=False, max_tokens=1)):
            pass
    finally:
        prefill = time.perf_counter() - started
        stop.set()
        await tick
        await engine.close()
    # had the prompt been decoded on the event loop, one gap would last about as long as the whole prefill
    assert max(gaps) < prefill / 3, (max(gaps), prefill)


async def test_prompt_longer_than_the_context_is_an_engine_error(engine: LlamaCppEngine) -> None:
    with pytest.raises(EngineError, match="--n-ctx"):
        await collect(engine, "翻译 " * 600, SamplingParams(max_tokens=4))
    assert engine.active_generations == 0


async def test_generation_fills_the_context_and_reports_length(engine: LlamaCppEngine) -> None:
    prompt = "a b c d " * 50
    prompt_tokens = engine.count_tokens(prompt)
    assert prompt_tokens < 500
    assert engine.model_info is not None
    context = engine.model_info.context_length
    result = await collect(engine, prompt, SamplingParams(do_sample=False, max_tokens=context))
    assert result.last.finish_reason == "length"
    # every cell holds a token; the last sampled token needs no cell of its own
    assert result.last.completion_tokens == context - prompt_tokens + 1


async def test_empty_prompt_generates(engine: LlamaCppEngine) -> None:
    result = await collect(engine, "", SamplingParams(do_sample=False, max_tokens=5))
    assert result.last.completion_tokens == 5


def test_count_tokens_parses_special_tokens(engine: LlamaCppEngine) -> None:
    assert engine.count_tokens("<|im_start|>") == 1
    assert engine.count_tokens("<|im_end|>\n") == 2
    assert engine.count_tokens("") == 0


async def test_repeat_last_n_sets_what_the_penalties_see(tiny_gguf: Path, prompts: list[str]) -> None:
    plain = SamplingParams(do_sample=False, max_tokens=40)
    penalised = SamplingParams(do_sample=False, max_tokens=40, repetition_penalty=1.8)
    results = {}
    for last_n in (0, 64, -1):
        engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=256, repeat_last_n=last_n))
        await engine.load(str(tiny_gguf))
        try:
            results[last_n] = (await collect(engine, prompts[1], plain), await collect(engine, prompts[1], penalised))
        finally:
            await engine.close()
    assert results[0][1].text == results[0][0].text  # no window: no penalty
    assert results[64][1].text != results[64][0].text
    assert results[-1][1].text != results[-1][0].text
    assert results[-1][1].last.completion_tokens == 40
