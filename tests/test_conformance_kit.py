"""The conformance kit: the reference engine passes it, and engines that break a rule fail the matching check."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sakura_core.engine import Engine
from sakura_core.testing.conformance import (
    ConformanceError,
    EngineConformance,
    check_cancellation,
    check_concurrent_generations,
    check_deltas_join,
    check_engine_basics,
    check_finish_reasons,
    check_greedy_deterministic,
    check_max_tokens,
    check_seeded_sampling,
    check_stop_strings,
    check_token_counts,
    default_prompts,
    run_generation,
)
from sakura_core.testing.reference_engine import ReferenceEngine, ReferenceOptions
from sakura_core.types import Delta, SamplingParams

#: Raw prompts whose last lines (what the reference engine cycles through) differ from the first character on.
DISTINCT_PROMPTS = [
    "第一行\nあいうえおかきくけこさしすせそたちつてとなにぬねの",
    "第二行\nアイウエオカキクケコサシスセソタチツテトナニヌネノ",
    "第三行\n零一二三四五六七八九十百千万亿兆京垓秭穰沟涧正载极",
    "第四行\nABCDEFGHIJKLMNOPQRSTUVWXYZ",
]
V10_MODEL = "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"


async def loaded(engine_class: type[ReferenceEngine] = ReferenceEngine, **options: Any) -> ReferenceEngine:
    engine = engine_class(ReferenceOptions(**options))
    await engine.load(V10_MODEL)
    return engine


class TestReferenceEngineConformance(EngineConformance):
    """Answers longer than the token budget: every greedy run ends with "length"."""

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls) -> AsyncIterator[Engine]:
        engine = await loaded(parallel=4)
        yield engine
        await engine.close()


class TestShortAnswersConformance(EngineConformance):
    """Answers shorter than the token budget (finish "stop"), a token delay, raw prompts, one sequence."""

    conformance_max_tokens = 20

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls) -> AsyncIterator[Engine]:
        engine = await loaded(parallel=1, answer_length=12, token_delay=0.001)
        yield engine
        await engine.close()

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_prompts(cls) -> list[str]:
        return DISTINCT_PROMPTS


async def test_default_prompts_use_the_models_prompt_format() -> None:
    engine = ReferenceEngine()
    await engine.load("sakura-13b-lnovel-v0.8-Q4_K_M.gguf")
    prompts = default_prompts(engine)
    assert len(set(prompts)) == len(prompts) >= 4
    assert all(p.startswith("<reserved_106>将下面的日文文本翻译成中文：") for p in prompts)
    assert all(p.endswith("<reserved_107>") for p in prompts)


async def test_default_prompts_need_a_loaded_engine_with_a_registered_format() -> None:
    engine = ReferenceEngine()
    with pytest.raises(ConformanceError, match="loaded engine"):
        default_prompts(engine)
    await engine.load(V10_MODEL)
    assert engine.model_info is not None
    engine.model_info = engine.model_info.model_copy(update={"prompt_format": "no-such-format"})
    with pytest.raises(ConformanceError, match="'no-such-format' is not registered"):
        default_prompts(engine)


async def test_a_generation_that_hangs_times_out() -> None:
    engine = await loaded(token_delay=10.0)
    with pytest.raises(ConformanceError, match=r"did not finish within 0\.1 s"):
        await run_generation(engine, "abc", SamplingParams(max_tokens=4), time_limit=0.1)
    assert engine.active_generations == 0


async def test_an_engine_error_becomes_a_conformance_error() -> None:
    engine = await loaded(fail_on="boom")
    with pytest.raises(ConformanceError, match="generate\\(\\) raised EngineError"):
        await run_generation(engine, "boom", SamplingParams(max_tokens=4))


# ---------------------------------------------------------------------------------------------- broken engines


class EmitsStopStrings(ReferenceEngine):
    """Ignores stop strings altogether."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        return super().generate(prompt, params.model_copy(update={"stop": []}))


class IncludesStopString(ReferenceEngine):
    """Stops at a stop string but emits it."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for delta in super().generate(prompt, params):
            if delta.finish_reason == "stop" and params.stop and delta.completion_tokens < params.max_tokens:
                full = self.answer_for(prompt, params)[: delta.completion_tokens]
                found = [s for s in params.stop if full.endswith(s)]
                delta.text += found[0] if found else ""
            yield delta


class ExceedsMaxTokens(ReferenceEngine):
    """Generates one token too many."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        return super().generate(prompt, params.model_copy(update={"max_tokens": params.max_tokens + 1}))


class NeverSaysLength(ReferenceEngine):
    """Reports "stop" when the output was cut by max_tokens."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for delta in super().generate(prompt, params):
            if delta.finish_reason == "length":
                delta.finish_reason = "stop"
            yield delta


class FinishReasonTooEarly(ReferenceEngine):
    """Yields one more empty delta after the one with the finish reason."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        last = Delta()
        async for delta in super().generate(prompt, params):
            last = delta
            yield delta
        yield Delta(prompt_tokens=last.prompt_tokens, completion_tokens=last.completion_tokens)


class NeverFreesOnCancel(ReferenceEngine):
    """Counts a generation as finished only when it runs to its end (no try/finally)."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        self.active += 1
        produced = 0
        for char in self.answer_for(prompt, params)[: params.max_tokens]:
            await asyncio.sleep(0)
            produced += 1
            yield Delta(char, len(prompt), produced)
        self.active -= 1
        yield Delta("", len(prompt), produced, "length" if produced == params.max_tokens else "stop")


class ActiveAlwaysZero(ReferenceEngine):
    """Does not report running generations."""

    @property
    def active_generations(self) -> int:
        return 0


class CorruptedByCancel(ReferenceEngine):
    """A cancelled generation leaves state behind that changes later outputs."""

    leaked = 0

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        return super().answer_for(prompt, params)[self.leaked :] + "x" * self.leaked

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        try:
            async for delta in super().generate(prompt, params):
                yield delta
        except (GeneratorExit, asyncio.CancelledError):
            self.leaked += 1
            raise


class NotAnAsyncGenerator(ReferenceEngine):
    """Returns an async iterator without aclose()."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        stream = super().generate(prompt, params)

        class Iterator:
            def __aiter__(self) -> Iterator:
                return self

            async def __anext__(self) -> Delta:
                return await anext(stream)

        return Iterator()


class WrongPromptTokens(ReferenceEngine):
    """Deltas count a beginning-of-sequence token that count_tokens() does not."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for delta in super().generate(prompt, params):
            delta.prompt_tokens += 1
            yield delta


class FinalDeltaWithoutCompletionCount(ReferenceEngine):
    """The last delta forgets the completion count."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for delta in super().generate(prompt, params):
            if delta.finish_reason is not None:
                delta.completion_tokens = 0
            yield delta


class CountsPerDelta(ReferenceEngine):
    """completion_tokens counts the delta's own tokens instead of the total."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for delta in super().generate(prompt, params):
            delta.completion_tokens = min(delta.completion_tokens, 1)
            yield delta


class CumulativeDeltas(ReferenceEngine):
    """Each delta carries the whole text so far."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        so_far = ""
        async for delta in super().generate(prompt, params):
            so_far += delta.text
            delta.text = so_far
            yield delta


class FinalDeltaRepeatsText(ReferenceEngine):
    """The last delta carries the whole output again."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        so_far = ""
        async for delta in super().generate(prompt, params):
            so_far += delta.text
            if delta.finish_reason is not None:
                delta.text = so_far
            yield delta


class MixesConcurrentOutputs(ReferenceEngine):
    """Keeps the answer being generated on the engine, so the latest generation's answer leaks into the others."""

    current = ""

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        self.current = super().answer_for(prompt, params)
        return self.current

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        self.answer_for(prompt, params)
        self.active += 1
        try:
            produced = 0
            while produced < min(len(self.current), params.max_tokens):
                await asyncio.sleep(0)
                char = self.current[produced]
                produced += 1
                yield Delta(char, len(prompt), produced)
            yield Delta("", len(prompt), produced, "length" if produced == params.max_tokens else "stop")
        finally:
            self.active -= 1


class RandomGreedy(ReferenceEngine):
    """Greedy decoding that is not deterministic."""

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        answer = list(super().answer_for(prompt, params))
        random.shuffle(answer)
        return "".join(answer)


class IgnoresSeed(ReferenceEngine):
    """Sampling that ignores the seed."""

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        return super().answer_for(prompt, params.model_copy(update={"seed": None}))


class BusyWhenIdle(ReferenceEngine):
    """Reports one active generation too many."""

    @property
    def active_generations(self) -> int:
        return self.active + 1


Check = Callable[..., Awaitable[None]]

BROKEN_ENGINES: list[tuple[type[ReferenceEngine], Check, str]] = [
    (EmitsStopStrings, check_stop_strings, "was emitted|must be the text before it"),
    (IncludesStopString, check_stop_strings, "was emitted"),
    (ExceedsMaxTokens, check_max_tokens, "max_tokens=1 was exceeded"),
    (NeverSaysLength, check_max_tokens, "exactly when finish_reason is 'length'"),
    (FinishReasonTooEarly, check_finish_reasons, "only the last delta may carry one"),
    (NeverFreesOnCancel, check_cancellation, "after aclose\\(\\) mid-stream, the engine still reports 1 active"),
    (ActiveAlwaysZero, check_cancellation, "active_generations is 0 while"),
    (CorruptedByCancel, check_cancellation, "after cancelled generations the engine's greedy output changed"),
    (NotAnAsyncGenerator, check_cancellation, "must return an async generator"),
    (WrongPromptTokens, check_token_counts, "prompt_tokens=\\d+, but count_tokens\\(prompt\\) is"),
    (FinalDeltaWithoutCompletionCount, check_token_counts, "completion_tokens went down"),
    (CountsPerDelta, check_max_tokens, "exactly when finish_reason is 'length'"),
    (CumulativeDeltas, check_deltas_join, "must carry only new text"),
    (FinalDeltaRepeatsText, check_deltas_join, "must be a prefix"),
    (MixesConcurrentOutputs, check_concurrent_generations, "run together differs from the same prompt run alone"),
    (RandomGreedy, check_greedy_deterministic, "greedy decoding is not deterministic"),
    (IgnoresSeed, check_seeded_sampling, "seed 1234 gave different outputs"),
]


@pytest.mark.parametrize(
    ("engine_class", "check", "message"),
    BROKEN_ENGINES,
    ids=[engine_class.__name__ for engine_class, _, _ in BROKEN_ENGINES],
)
async def test_broken_engine_fails_its_check(engine_class: type[ReferenceEngine], check: Check, message: str) -> None:
    engine = await loaded(engine_class, parallel=4)
    with pytest.raises(ConformanceError, match=message):
        await check(engine, DISTINCT_PROMPTS)


@pytest.mark.parametrize(
    ("engine_class", "check", "message"),
    BROKEN_ENGINES,
    ids=[engine_class.__name__ for engine_class, _, _ in BROKEN_ENGINES],
)
async def test_reference_engine_passes_the_check_a_broken_engine_fails(
    engine_class: type[ReferenceEngine], check: Check, message: str
) -> None:
    engine = await loaded(parallel=4)
    await check(engine, DISTINCT_PROMPTS)


async def test_an_engine_busy_when_idle_fails_the_basics() -> None:
    engine = await loaded(BusyWhenIdle)
    with pytest.raises(ConformanceError, match="idle engine must report active_generations == 0, got 1"):
        await check_engine_basics(engine)


async def test_checks_that_need_long_outputs_say_so() -> None:
    engine = await loaded(answer_length=1)
    with pytest.raises(ConformanceError, match="stop_strings needs a greedy output"):
        await check_stop_strings(engine, DISTINCT_PROMPTS)
    with pytest.raises(ConformanceError, match="cancellation needs a greedy output of at least 2 text pieces"):
        await check_cancellation(engine, DISTINCT_PROMPTS)


async def test_the_stop_string_check_spans_two_deltas() -> None:
    """The chosen stop string starts in one delta and ends in the next (one character per delta here)."""
    seen: list[list[str]] = []

    class Recording(ReferenceEngine):
        def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
            seen.append(list(params.stop))
            return super().generate(prompt, params)

    await check_stop_strings(await loaded(Recording), DISTINCT_PROMPTS)
    stops = [stop for stop in seen[-1] if "never" not in stop]
    assert len(stops) == 1 and len(stops[0]) == 2
    assert stops[0] in DISTINCT_PROMPTS[0]
