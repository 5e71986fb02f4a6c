"""The vllm engine on real vLLM (CPU build) with a tiny random Qwen2: identity, counts, sampling, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sakura_vllm.engine import VllmEngine
from tokenizers import Tokenizer

from sakura_core.plugins import PluginRegistry
from sakura_core.types import Delta, ModelInfo, SamplingParams


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_identity_comes_from_config_json(vllm_engine: VllmEngine, tiny_model: Path) -> None:
    info = vllm_engine.model_info
    assert info is not None
    # the directory name says nothing; config.json's sakura_* fields do
    assert info.id == "tiny-random-qwen2-v1.0"
    assert (info.name, info.version, info.quant) == ("sakura-tiny-qwen2", "1.0", "bf16")
    assert served_format(info) == "v1.0"
    assert info.path == str(tiny_model)
    assert info.context_length == 1024  # --max-model-len
    assert info.meta == {"n_vocab": 640, "n_ctx_train": 2048, "n_embd": 128}


async def test_parallelism_is_vllms_max_num_seqs(vllm_engine: VllmEngine) -> None:
    assert vllm_engine.parallelism == 8
    assert vllm_engine.llm.vllm_config.scheduler_config.max_num_seqs == 8


async def test_prompt_tokens_come_from_vllm_and_match_count_tokens(
    vllm_engine: VllmEngine, prompts: list[str], tiny_model: Path, prompt_outcomes: dict[str, tuple[str, Delta]]
) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_model / "tokenizer.json"))
    for prompt in prompts:
        expected = len(tokenizer.encode(prompt).ids)
        assert "<|im_start|>" in tokenizer.encode(prompt).tokens  # special tokens parsed as such
        assert vllm_engine.count_tokens(prompt) == expected
        assert prompt_outcomes[prompt][1].prompt_tokens == expected


async def test_end_of_text_token_is_not_counted(
    vllm_engine: VllmEngine, ending_prompt: str, prompt_outcomes: dict[str, tuple[str, Delta]], generate_all
) -> None:
    text, last = prompt_outcomes[ending_prompt]
    produced = last.completion_tokens
    assert last.finish_reason == "stop"
    # with exactly that many tokens allowed the output is the same, cut by the limit
    cut_text, cut, _ = await generate_all(
        vllm_engine, ending_prompt, SamplingParams(do_sample=False, max_tokens=produced)
    )
    assert (cut_text, cut.finish_reason, cut.completion_tokens) == (text, "length", produced)
    # one more allowed: the model ends by itself, and the end-of-text token is not counted
    end_text, end, _ = await generate_all(
        vllm_engine, ending_prompt, SamplingParams(do_sample=False, max_tokens=produced + 1)
    )
    assert (end_text, end.finish_reason, end.completion_tokens) == (text, "stop", produced)
    # vLLM itself counts that token: its own output has one token more, the end of text
    from vllm import SamplingParams as VllmSamplingParams

    final = None
    async for output in vllm_engine.llm.generate(
        {"prompt": ending_prompt}, VllmSamplingParams(max_tokens=160, temperature=0.0), "raw-count"
    ):
        final = output
    assert final is not None
    tokens = final.outputs[0].token_ids
    assert len(tokens) == produced + 1
    assert vllm_engine.llm.get_tokenizer().convert_ids_to_tokens(tokens[-1]) in ("<|im_end|>", "<|endoftext|>")


async def test_prompt_formats_special_stop_strings_stop_on_the_token(
    vllm_engine: VllmEngine, ending_prompt: str, prompt_outcomes: dict[str, tuple[str, Delta]], generate_all
) -> None:
    # the server adds the format's stop strings; vLLM strips special tokens from text, so they become token ids
    text, last = prompt_outcomes[ending_prompt]
    params = SamplingParams(do_sample=False, max_tokens=160, stop=["<|im_end|>", "<|endoftext|>", ""])
    got, end, _ = await generate_all(vllm_engine, ending_prompt, params)
    assert (got, end.finish_reason, end.completion_tokens) == (text, "stop", last.completion_tokens)


async def test_stop_string_ends_output_and_is_not_emitted(
    vllm_engine: VllmEngine, running_prompt: str, prompt_outcomes: dict[str, tuple[str, Delta]], generate_all
) -> None:
    text, _ = prompt_outcomes[running_prompt]
    candidates = [text[i : i + 2] for i in range(3, len(text) - 2) if "\ufffd" not in text[i : i + 2]]
    assert candidates, text
    stop = candidates[0]
    got, end, _ = await generate_all(
        vllm_engine, running_prompt, SamplingParams(do_sample=False, max_tokens=160, stop=[stop])
    )
    assert got == text[: text.index(stop)]
    assert stop not in got
    assert end.finish_reason == "stop"
    assert 0 < end.completion_tokens < 160


async def test_streams_about_one_token_per_delta(vllm_engine: VllmEngine, running_prompt: str, generate_all) -> None:
    deltas: list[Delta] = [
        d async for d in vllm_engine.generate(running_prompt, SamplingParams(do_sample=False, max_tokens=40))
    ]
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts) and counts[-1] == 40
    assert len(deltas) >= 10  # streamed, not one block (byte tokens of a split character share a delta)
    assert all(b - a <= 4 for a, b in zip([0, *counts], counts, strict=False))


async def test_seeded_sampling_is_reproducible(vllm_engine: VllmEngine, running_prompt: str, generate_all) -> None:
    def sampled(seed: int) -> SamplingParams:
        return SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_tokens=40, seed=seed)

    first, _, _ = await generate_all(vllm_engine, running_prompt, sampled(7))
    again, _, _ = await generate_all(vllm_engine, running_prompt, sampled(7))
    other, _, _ = await generate_all(vllm_engine, running_prompt, sampled(8))
    assert first == again
    assert first != other


async def test_concurrent_generations_are_batched_and_do_not_mix(
    vllm_engine: VllmEngine, prompts: list[str], prompt_outcomes: dict[str, tuple[str, Delta]], generate_all
) -> None:
    vllm_engine.scheduler.mark()
    params = SamplingParams(do_sample=False, max_tokens=24)
    results = await asyncio.gather(*(generate_all(vllm_engine, p, params) for p in prompts[:8]))
    solo = {p: await generate_all(vllm_engine, p, params) for p in prompts[:8]}
    for prompt, (text, last, _) in zip(prompts[:8], results, strict=True):
        assert text == solo[prompt][0]
        assert last.completion_tokens == solo[prompt][1].completion_tokens
    assert vllm_engine.scheduler.peak_running > 1  # vLLM ran them together
    assert vllm_engine.active_generations == 0


async def test_closing_a_stream_aborts_the_request_in_vllm(
    vllm_engine: VllmEngine, running_prompt: str, prompts: list[str], generate_all
) -> None:
    engine = vllm_engine
    short = SamplingParams(do_sample=False, max_tokens=3)
    stream = engine.generate(running_prompt, SamplingParams(do_sample=False, max_tokens=900))
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    assert engine.active_generations == 1  # vLLM's own count of unfinished requests
    # while it runs, vLLM's scheduler runs it beside another request
    engine.scheduler.mark()
    await generate_all(engine, prompts[0], short)
    assert engine.scheduler.peak_running == 2

    await stream.aclose()  # what the server does when its client disconnects
    assert engine.active_generations == 0
    # vLLM's engine process dropped it: the next request runs alone
    engine.scheduler.mark()
    await generate_all(engine, prompts[0], short)
    assert engine.scheduler.peak_running == 1
    assert engine.scheduler.running == 0


async def test_cancelling_the_consuming_task_aborts_the_request_in_vllm(
    vllm_engine: VllmEngine, running_prompt: str, prompts: list[str], generate_all
) -> None:
    engine = vllm_engine
    received: list[Delta] = []

    async def consume() -> None:
        async for delta in engine.generate(running_prompt, SamplingParams(do_sample=False, max_tokens=900)):
            received.append(delta)

    task = asyncio.create_task(consume())
    await eventually(lambda: len(received) >= 3)
    assert engine.active_generations == 1  # vLLM's own count of unfinished requests
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert received[-1].finish_reason is None
    assert engine.active_generations == 0
    engine.scheduler.mark()
    await generate_all(engine, prompts[0], SamplingParams(do_sample=False, max_tokens=3))
    assert engine.scheduler.peak_running == 1


async def test_prompt_longer_than_the_context_is_an_engine_error(vllm_engine: VllmEngine) -> None:
    from sakura_core.engine import EngineError

    prompt = "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。" * 200
    assert vllm_engine.count_tokens(prompt) > 1024
    with pytest.raises(EngineError, match=r"vLLM rejected the request: .*1024"):
        async for _ in vllm_engine.generate(prompt, SamplingParams(max_tokens=8)):
            pass
    assert vllm_engine.active_generations == 0


async def test_answer_may_fill_the_context(vllm_engine: VllmEngine, running_prompt: str, generate_all) -> None:
    # the server allows at most context - prompt tokens; vLLM accepts exactly that many
    room = 1024 - vllm_engine.count_tokens(running_prompt)
    _, last, _ = await generate_all(vllm_engine, running_prompt, SamplingParams(do_sample=False, max_tokens=room))
    assert last.finish_reason in ("stop", "length")
    assert last.completion_tokens <= room
    assert (last.finish_reason == "length") == (last.completion_tokens == room)


async def test_a_repeated_prefix_is_taken_from_vllms_prefix_cache(vllm_engine: VllmEngine, generate_all) -> None:
    glossary = "\n".join(f"用語{i}->术语{i}" for i in range(60))  # a long shared prefix, as clients send
    prefix = f"<|im_start|>system\n{glossary}<|im_end|>\n"
    first = prefix + "<|im_start|>user\n一行目<|im_end|>\n<|im_start|>assistant\n"
    second = prefix + "<|im_start|>user\n二行目<|im_end|>\n<|im_start|>assistant\n"
    shared = vllm_engine.count_tokens(prefix + "<|im_start|>user\n")  # the two prompts part after this
    _, cold, _ = await generate_all(vllm_engine, first, SamplingParams(do_sample=False, max_tokens=4))
    _, warm, _ = await generate_all(vllm_engine, second, SamplingParams(do_sample=False, max_tokens=4))
    assert cold.cached_tokens is not None and warm.cached_tokens is not None
    block = vllm_engine.llm.vllm_config.cache_config.block_size
    # whole blocks of the shared prefix come from the cache; the rest of the prompt is read
    assert shared - block < warm.cached_tokens <= shared, (shared, block, warm.cached_tokens)
    assert warm.cached_tokens >= 0.9 * shared or shared < 10 * block


def served_format(info: ModelInfo | None) -> str:
    """The prompt format the core serves a model of this identity with (engines report identity only)."""
    assert info is not None
    return PluginRegistry.create(entry_points=False).prompt_format_for(info).name
