"""Sakura's own translation features: degeneration retry and the start-up self-check."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core.degeneration import Translation, translate_with
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import SYSTEM_V09, GlossaryEntry, translation_prompt
from sakura_core.self_check import SELF_CHECK_EXPECTED, SELF_CHECK_INPUT, self_check
from sakura_core.types import Delta, GenerationRequest, GenerationResult, ModelInfo, SamplingParams

MODEL = "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"


async def translate(
    engine: ReferenceEngine,
    registry: PluginRegistry,
    model: ModelInfo,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
    params: SamplingParams | None = None,
) -> Translation:
    """``translate_with`` through the model's generation path, as ``sakura translate --engine`` runs it."""
    loaded = LoadedModel(engine, registry, model)

    async def run(request: GenerationRequest) -> GenerationResult:
        prepared = await loaded.prepare(request.prompt, request.params, max_tokens=request.params.max_tokens)
        return await loaded.complete(prepared)

    return await translate_with(run, loaded.prompt_format, text, glossary, history, params)


class RecordingEngine(ReferenceEngine):
    """The reference engine, remembering the prompt and parameters of every generation.

    ``stops_when_penalised`` makes it answer briefly once a frequency penalty of at least that value is asked for,
    as a degenerating model often does.
    """

    def __init__(self, options: ReferenceOptions | None = None, stops_when_penalised: float | None = None) -> None:
        super().__init__(options)
        self.calls: list[tuple[str, SamplingParams]] = []
        self.stops_when_penalised = stops_when_penalised

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        answer = super().answer_for(prompt, params)
        if self.stops_when_penalised is not None and params.frequency_penalty >= self.stops_when_penalised:
            return answer[:3]
        return answer

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        self.calls.append((prompt, params))
        return super().generate(prompt, params)


class AnswerEngine(RecordingEngine):
    """Answers every prompt with a fixed text (then the end of sequence)."""

    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer = answer

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        return self.answer


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry.create(entry_points=False)


async def load(engine: RecordingEngine, model: str = MODEL) -> ModelInfo:
    return await engine.load(model)


async def test_an_output_that_stops_is_not_retried(registry: PluginRegistry) -> None:
    engine = RecordingEngine(ReferenceOptions(answer_length=10))
    model = await load(engine)
    translation = await translate(engine, registry, model, "やる気", params=SamplingParams(max_tokens=50))
    assert [params.frequency_penalty for _, params in engine.calls] == [0.0]
    assert len(translation.attempts) == 1
    assert not translation.degenerated
    assert translation.attempts[0].finish_reason == "stop"


async def test_degeneration_is_retried_with_frequency_penalty_005_then_02(registry: PluginRegistry) -> None:
    engine = RecordingEngine(ReferenceOptions(answer_length=100))
    model = await load(engine)
    params = SamplingParams(max_tokens=20, temperature=0.3)
    translation = await translate(engine, registry, model, "やる気", params=params)
    assert [p.frequency_penalty for _, p in engine.calls] == [0.0, 0.05, 0.2]
    # everything else the caller asked for is kept on every attempt (the model's path adds its format's stops)
    stop = ["<|im_end|>", "<|endoftext|>"]
    assert all(
        p.model_copy(update={"frequency_penalty": 0.0}) == params.model_copy(update={"stop": stop})
        for _, p in engine.calls
    )
    assert [a.finish_reason for a in translation.attempts] == ["length"] * 3
    assert translation.degenerated
    assert translation.text == translation.attempts[-1].text
    _, prompt = translation_prompt(registry.prompt_format("v1.0"), "やる気")
    assert {p for p, _ in engine.calls} == {prompt}


async def test_the_retry_stops_at_the_first_attempt_that_stops(registry: PluginRegistry) -> None:
    engine = RecordingEngine(ReferenceOptions(answer_length=100), stops_when_penalised=0.05)
    model = await load(engine)
    translation = await translate(engine, registry, model, "やる気", params=SamplingParams(max_tokens=20))
    assert [p.frequency_penalty for _, p in engine.calls] == [0.0, 0.05]
    assert [a.finish_reason for a in translation.attempts] == ["length", "stop"]
    assert not translation.degenerated
    assert translation.text == translation.attempts[1].text and len(translation.text) == 3


async def test_translate_renders_glossary_and_history_in_the_models_format(registry: PluginRegistry) -> None:
    engine = RecordingEngine(ReferenceOptions(answer_length=4))
    model = await load(engine)
    glossary = [{"src": "先輩", "dst": "前辈"}]
    await translate(engine, registry, model, "先輩、おはよう", glossary=glossary, history="之前的译文")
    [(prompt, _)] = engine.calls
    assert prompt == (
        f"<|im_start|>system\n{SYSTEM_V09}<|im_end|>\n"
        "<|im_start|>assistant\n之前的译文<|im_end|>\n"
        "<|im_start|>user\n根据以下术语表（可以为空）：\n先輩->前辈\n将下面的日文文本根据对应关系和备注翻译成中文：先輩、おはよう<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


async def test_self_check_passes_for_the_genuine_answer(
    registry: PluginRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    engine = AnswerEngine(SELF_CHECK_EXPECTED)
    model = await load(engine, "sakura-14b-qwen2beta-v0.9.2-iq4xs.gguf")
    with caplog.at_level(logging.INFO, logger="sakura_core.self_check"):
        check = await self_check(LoadedModel(engine, registry, model))
    assert (check.output, check.passed) == ("干劲Mangoskin", True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [(prompt, params)] = engine.calls
    _, expected_prompt = translation_prompt(registry.prompt_format("v0.9"), SELF_CHECK_INPUT)
    assert prompt == expected_prompt
    assert SELF_CHECK_INPUT == "やる気マンゴスキン"
    assert (params.greedy, params.max_tokens) == (True, 20)
    assert set(params.stop) == {"<|im_end|>", "<|endoftext|>"}


async def test_self_check_mismatch_is_a_warning_not_an_error(
    registry: PluginRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    engine = AnswerEngine("  something else \n")
    model = await load(engine)
    with caplog.at_level(logging.WARNING, logger="sakura_core.self_check"):
        check = await self_check(LoadedModel(engine, registry, model))
    assert (check.output, check.passed) == ("something else", False)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'something else'" in warning.getMessage()
    assert "干劲Mangoskin" in warning.getMessage()
    assert "--model-version" in warning.getMessage()


async def test_self_check_uses_the_v08_format_and_stops_at_its_end_token(registry: PluginRegistry) -> None:
    engine = AnswerEngine(SELF_CHECK_EXPECTED + "</s>garbage")
    model = await load(engine, "sakura-13b-lnovel-v0.8-Q4_K_M.gguf")
    check = await self_check(LoadedModel(engine, registry, model))
    assert check.passed
    [(prompt, params)] = engine.calls
    assert prompt == "<reserved_106>将下面的日文文本翻译成中文：やる気マンゴスキン<reserved_107>"
    assert params.stop == ["</s>"]
