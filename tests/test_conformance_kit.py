"""The conformance kit: the reference engine passes it, engines that break a rule only they can keep fail the
matching check, and engines that break a finish rule the core enforces pass it (the core fixes what they do)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core import hookimpl
from sakura_core.engine import Engine, EngineError
from sakura_core.engine_runner import EngineRunner
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import PromptFormat, render_chatml, translation_messages_v10
from sakura_core.testing.conformance import (
    ConformanceError,
    EngineConformance,
    check_cancellation,
    check_concurrent_generations,
    check_deltas_join,
    check_engine_basics,
    check_event_loop_responsive,
    check_finish_reasons,
    check_greedy_deterministic,
    check_max_tokens,
    check_output_text,
    check_seeded_sampling,
    check_stop_strings,
    check_token_counts,
    default_prompts,
    end_texts,
    run_generation,
)
from sakura_core.types import Delta, ModelInfo, SamplingParams

#: Raw prompts whose last lines (what the reference engine cycles through) differ from the first character on.
DISTINCT_PROMPTS = [
    "第一行\nあいうえおかきくけこさしすせそたちつてとなにぬねの",
    "第二行\nアイウエオカキクケコサシスセソタチツテトナニヌネノ",
    "第三行\n零一二三四五六七八九十百千万亿兆京垓秭穰沟涧正载极",
    "第四行\nABCDEFGHIJKLMNOPQRSTUVWXYZ",
]
V10_MODEL = "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


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


class ReportsNoActiveGenerations(ReferenceEngine):
    """Overrides active_generations and always says 0: as the docs say, 0 is "nothing reported"."""

    @property
    def active_generations(self) -> int:
        return 0


class TestReportsNoActiveGenerationsConformance(EngineConformance):
    """An engine whose active_generations is always 0 passes the kit (it reports nothing, like the default)."""

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls) -> AsyncIterator[Engine]:
        engine = await loaded(ReportsNoActiveGenerations, parallel=2)
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
    await wait_until(lambda: engine.active_generations == 0)


async def test_an_engine_error_becomes_a_conformance_error() -> None:
    engine = await loaded(fail_on="boom")
    with pytest.raises(ConformanceError, match="generate\\(\\) raised EngineError"):
        await run_generation(engine, "boom", SamplingParams(max_tokens=4))


# ---------------------------------------------------------------------------------------------- broken engines
# Each breaks a rule only the engine can keep: the kit must catch it.


class ClaimsStopStringsButEmitsThem(ReferenceEngine):
    """Says it ends on stop strings itself (so the core does not), but ignores them."""

    handles_stop_strings = True


class NeverFreesOnCancel(ReferenceEngine):
    """Counts a generation as finished only when it runs to its end (no try/finally)."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        self.active += 1
        for char in self.answer_for(prompt, params)[: params.max_tokens]:
            await asyncio.sleep(0)
            yield char
        self.active -= 1


class CorruptedByCancel(ReferenceEngine):
    """A cancelled generation leaves state behind that changes later outputs."""

    leaked = 0

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        return super().answer_for(prompt, params)[self.leaked :] + "x" * self.leaked

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        self.active += 1
        try:
            for char in self.answer_for(prompt, params)[: params.max_tokens]:
                await asyncio.sleep(0)
                yield char
        except (GeneratorExit, asyncio.CancelledError):
            self.leaked += 1
            raise
        finally:
            self.active -= 1


class NotAnAsyncGenerator(ReferenceEngine):
    """Returns an async iterator without aclose()."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        stream = super().generate(prompt, params)

        class Iterator:
            def __aiter__(self) -> Iterator:
                return self

            async def __anext__(self) -> str:
                return await anext(stream)

        return Iterator()


class WrongPromptTokens(ReferenceEngine):
    """Deltas count a beginning-of-sequence token that count_tokens() does not."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        produced = 0
        async for char in super().generate(prompt, params):
            produced += 1
            yield Delta(char, len(prompt) + 1, produced)


class CumulativeDeltas(ReferenceEngine):
    """Each piece carries the whole text so far."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        so_far = ""
        async for char in super().generate(prompt, params):
            so_far += char
            yield Delta(so_far, 0, len(so_far))


class FinalDeltaRepeatsText(ReferenceEngine):
    """The last delta carries the whole output again (its answers end before the checks' token budget)."""

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        info = await super().load(model, model_version)
        self.model.answer_length = 10
        return info

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        so_far = ""
        async for char in super().generate(prompt, params):
            so_far += char
            yield Delta(char, 0, len(so_far))
        yield Delta(so_far, 0, len(so_far), "stop")


class MixesConcurrentOutputs(ReferenceEngine):
    """Keeps the answer being generated on the engine, so the latest generation's answer leaks into the others."""

    current = ""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        self.current = self.answer_for(prompt, params)
        produced = 0
        while produced < min(len(self.current), params.max_tokens):
            await asyncio.sleep(0)
            produced += 1
            yield self.current[produced - 1]


class RandomGreedy(ReferenceEngine):
    """Greedy decoding that is not deterministic."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        answer = list(self.answer_for(prompt, params))
        random.shuffle(answer)
        for char in answer[: params.max_tokens]:
            yield char


class IgnoresSeed(ReferenceEngine):
    """Sampling that ignores the seed."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        return super().generate(prompt, params.model_copy(update={"seed": None}))


class YieldsNumbers(ReferenceEngine):
    """Yields token ids instead of text."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[int]:  # type: ignore[override]
        async for char in super().generate(prompt, params):
            yield ord(char)


class CountsNegative(ReferenceEngine):
    """count_tokens() answers nonsense."""

    def count_tokens(self, text: str) -> int:
        return -1


class Unhealthy(ReferenceEngine):
    """Reports that its backend is down although it serves."""

    async def health(self) -> str | None:
        return "backend gone"


class BlocksTheLoop(ReferenceEngine):
    """Decodes on the event loop: its blocking backend runs in generate() itself, not in a worker thread."""

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        info = await super().load(model, model_version)
        self.model.token_delay = 0.02  # 16 tokens block the loop for about 0.3 s
        return info

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        self.active += 1
        try:
            for token in self.model.emit(self.answer_for(prompt, params), params.max_tokens):
                yield token
        finally:
            self.active -= 1


class CountsThePrompt(ReferenceEngine):
    """Reports the backend's total token count (prompt included) as completion_tokens."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        produced = 0
        async for char in super().generate(prompt, params):
            produced += 1
            yield Delta(char, len(prompt), len(prompt) + produced)


class SplitsCharacters(ReferenceEngine):
    """One token per UTF-8 byte, each decoded on its own: a character of several bytes becomes U+FFFD pieces."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        async for char in super().generate(prompt, params):
            for byte in char.encode():
                yield bytes([byte]).decode(errors="replace")


class EmitsTheEndOfText(ReferenceEngine):
    """Yields the end-of-sequence token's text when its answer ends (its answers end before the token budget)."""

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        info = await super().load(model, model_version)
        self.model.answer_length = 10
        return info

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        async for char in super().generate(prompt, params):
            yield char
        yield "<|im_end|>"


class BusyWhenIdle(ReferenceEngine):
    """Reports one active generation too many."""

    @property
    def active_generations(self) -> int:
        return self.active + 1


Check = Callable[..., Awaitable[None]]

BROKEN_ENGINES: list[tuple[type[ReferenceEngine], Check, str]] = [
    (ClaimsStopStringsButEmitsThem, check_stop_strings, "was emitted"),
    (NeverFreesOnCancel, check_cancellation, "after aclose\\(\\) mid-stream, the engine still reports 1 active"),
    (CorruptedByCancel, check_cancellation, "after cancelled generations the engine's greedy output changed"),
    (NotAnAsyncGenerator, check_cancellation, "must return an async generator"),
    (WrongPromptTokens, check_token_counts, "prompt_tokens=\\d+, but count_tokens\\(prompt\\) is"),
    (CumulativeDeltas, check_deltas_join, "must carry only new text"),
    (FinalDeltaRepeatsText, check_deltas_join, "a last delta must not repeat the output"),
    (MixesConcurrentOutputs, check_concurrent_generations, "run together differs from the same prompt run alone"),
    (RandomGreedy, check_greedy_deterministic, "greedy decoding is not deterministic"),
    (IgnoresSeed, check_seeded_sampling, "seed 1234 gave different outputs"),
    (YieldsNumbers, check_finish_reasons, "generate\\(\\) raised EngineError: .* yielded int; it must yield str"),
    (CountsNegative, check_engine_basics, "count_tokens\\(''\\) raised EngineError: .*counted -1 tokens"),
    (Unhealthy, check_engine_basics, "must report itself healthy .*'backend gone'"),
    (BusyWhenIdle, check_engine_basics, "idle engine must report active_generations == 0, got 1"),
    (BlocksTheLoop, check_event_loop_responsive, r"the event loop was blocked for [\d.]+ s at a stretch"),
    (CountsThePrompt, check_output_text, r"reports completion_tokens=\d+, above max_tokens=16"),
    (SplitsCharacters, check_output_text, "a piece of text holds U\\+FFFD"),
    (EmitsTheEndOfText, check_output_text, "the output contains the end-of-sequence text '<\\|im_end\\|>'"),
]


async def run_check(check: Check, engine: Engine) -> None:
    if check is check_engine_basics:
        await check(engine)
    elif check is check_output_text:
        await check(engine, DISTINCT_PROMPTS, end_texts=end_texts(engine))
    else:
        await check(engine, DISTINCT_PROMPTS)


@pytest.mark.parametrize(
    ("engine_class", "check", "message"),
    BROKEN_ENGINES,
    ids=[engine_class.__name__ for engine_class, _, _ in BROKEN_ENGINES],
)
async def test_broken_engine_fails_its_check(engine_class: type[ReferenceEngine], check: Check, message: str) -> None:
    engine = await loaded(engine_class, parallel=4)
    with pytest.raises(ConformanceError, match=message):
        await run_check(check, engine)


@pytest.mark.parametrize("check", sorted({check for _, check, _ in BROKEN_ENGINES}, key=lambda c: c.__name__))
async def test_the_reference_engine_passes_each_check_a_broken_engine_fails(check: Check) -> None:
    await run_check(check, await loaded(parallel=4))


# ------------------------------------------------------------------------------------- the rules the core keeps
# Each engine breaks a finish or counting rule in its raw stream; run as the server runs it, the core keeps the rule,
# so the engine passes the check. Each test first shows that the raw stream does break the rule.


async def raw_deltas(engine: Engine, prompt: str, params: SamplingParams) -> list[Delta | str]:
    return [item async for item in engine.generate(prompt, params)]


class IgnoresStopStrings(ReferenceEngine):
    """Leaves stop strings to the core (the plain engine does too: this one says so explicitly)."""

    handles_stop_strings = False


class ExceedsMaxTokens(ReferenceEngine):
    """Generates one token too many."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        return super().generate(prompt, params.model_copy(update={"max_tokens": params.max_tokens + 1}))


class NeverSaysLength(ReferenceEngine):
    """Counts its tokens and always finishes with "stop", also when the output was cut by max_tokens."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        produced = 0
        async for char in super().generate(prompt, params):
            produced += 1
            yield Delta(char, 0, produced)
        yield Delta("", 0, produced, "stop")


class DeltaAfterTheFinish(ReferenceEngine):
    """Yields one more delta after the one with the finish reason."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        produced = 0
        async for char in super().generate(prompt, params):
            produced += 1
            yield Delta(char, 0, produced)
        yield Delta("", 0, produced, "stop")
        yield Delta("!", 0, produced + 1)


class CountsPerDelta(ReferenceEngine):
    """completion_tokens counts the delta's own tokens instead of the total."""

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        async for char in super().generate(prompt, params):
            yield Delta(char, 0, 1)


class AsyncCounting(ReferenceEngine):
    """Counts tokens with a coroutine, as an engine with a remote tokenizer does."""

    async def count_tokens(self, text: str) -> int:  # type: ignore[override]
        await asyncio.sleep(0)
        return len(text)


def _has_stop_string(items: list[Delta | str], stop: str) -> bool:
    return stop in "".join(item if isinstance(item, str) else item.text for item in items)


def _too_many_tokens(items: list[Delta | str], max_tokens: int) -> bool:
    return len(items) > max_tokens


def _never_length(items: list[Delta | str], max_tokens: int) -> bool:
    return isinstance(items[-1], Delta) and items[-1].finish_reason == "stop" and len(items) - 1 == max_tokens


def _after_finish(items: list[Delta | str], max_tokens: int) -> bool:
    return any(isinstance(i, Delta) and i.finish_reason for i in items[:-1])


def _per_delta_counts(items: list[Delta | str], max_tokens: int) -> bool:
    return all(isinstance(i, Delta) and i.completion_tokens == 1 for i in items) and len(items) > 1


CORE_ENFORCED: list[tuple[type[ReferenceEngine], Check, Callable[[list[Delta | str], int], bool]]] = [
    (ExceedsMaxTokens, check_max_tokens, _too_many_tokens),
    (NeverSaysLength, check_max_tokens, _never_length),
    (DeltaAfterTheFinish, check_finish_reasons, _after_finish),
    (CountsPerDelta, check_token_counts, _per_delta_counts),
]


@pytest.mark.parametrize(
    ("engine_class", "check", "breaks_the_rule"), CORE_ENFORCED, ids=[c.__name__ for c, _, _ in CORE_ENFORCED]
)
async def test_the_core_keeps_the_rule_an_engine_breaks(
    engine_class: type[ReferenceEngine], check: Check, breaks_the_rule: Callable[[list[Delta | str], int], bool]
) -> None:
    engine = await loaded(engine_class, parallel=4)
    raw = await raw_deltas(engine, DISTINCT_PROMPTS[0], SamplingParams(max_tokens=8, do_sample=False))
    assert breaks_the_rule(raw, 8), f"{engine_class.__name__}'s raw stream keeps the rule after all: {raw}"
    await check(engine, DISTINCT_PROMPTS)


async def test_the_core_ends_on_stop_strings_for_an_engine_that_ignores_them() -> None:
    engine = await loaded(IgnoresStopStrings)
    stop = DISTINCT_PROMPTS[0].splitlines()[-1][3:5]
    params = SamplingParams(max_tokens=16, do_sample=False, stop=[stop])
    assert _has_stop_string(await raw_deltas(engine, DISTINCT_PROMPTS[0], params), stop)
    run = await run_generation(engine, DISTINCT_PROMPTS[0], params)
    assert stop not in run.text and run.finish_reason == "stop" and run.completion_tokens == 5
    await check_stop_strings(engine, DISTINCT_PROMPTS)


class TestAsyncCountingConformance(EngineConformance):
    """An engine whose count_tokens is a coroutine passes the kit (the core awaits it)."""

    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls) -> AsyncIterator[Engine]:
        engine = await loaded(AsyncCounting, parallel=2)
        yield engine
        await engine.close()


async def test_a_blocking_count_runs_off_the_event_loop() -> None:
    threads: list[str] = []

    class RecordsItsThread(ReferenceEngine):
        def count_tokens(self, text: str) -> int:
            import threading

            threads.append(threading.current_thread().name)
            return len(text)

    engine = await loaded(RecordsItsThread)
    assert await EngineRunner(engine).count_tokens("abc") == 3
    assert threads and threads[0] != "MainThread"


async def test_an_engine_error_in_count_tokens_reaches_the_caller() -> None:
    class CannotCount(ReferenceEngine):
        def count_tokens(self, text: str) -> int:
            raise EngineError("tokenizer offline")

    with pytest.raises(EngineError, match="tokenizer offline"):
        await EngineRunner(await loaded(CannotCount)).count_tokens("abc")


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
        def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
            seen.append(list(params.stop))
            return super().generate(prompt, params)

    await check_stop_strings(await loaded(Recording), DISTINCT_PROMPTS)
    stops = [stop for stop in seen[-1] if "never" not in stop]
    assert len(stops) == 1 and len(stops[0]) == 2
    assert stops[0] in DISTINCT_PROMPTS[0]


async def test_an_engine_that_blocks_the_loop_is_blamed_for_the_blocking_not_its_counter() -> None:
    """Its counter is right (the cancellation check passes); only the loop check fails, and says why."""
    engine = await loaded(BlocksTheLoop, parallel=2)
    await check_cancellation(engine, DISTINCT_PROMPTS)
    with pytest.raises(ConformanceError, match="generate\\(\\) runs blocking work on the event loop"):
        await check_event_loop_responsive(engine, DISTINCT_PROMPTS)


async def test_the_loop_check_allows_what_its_limit_allows() -> None:
    await check_event_loop_responsive(await loaded(BlocksTheLoop), DISTINCT_PROMPTS, block_limit=30.0)


async def test_the_core_hides_what_the_output_text_check_finds() -> None:
    """Run as the server runs them, the other checks pass these engines: only the new check catches them."""
    await check_token_counts(await loaded(CountsThePrompt), DISTINCT_PROMPTS[3:])
    await check_max_tokens(await loaded(CountsThePrompt), DISTINCT_PROMPTS[3:])
    await check_deltas_join(await loaded(SplitsCharacters), DISTINCT_PROMPTS)
    await check_finish_reasons(await loaded(EmitsTheEndOfText), DISTINCT_PROMPTS)


async def test_end_texts_are_the_models_prompt_format_stop_strings() -> None:
    assert "<|im_end|>" in end_texts(await loaded())
    engine = ReferenceEngine()
    await engine.load("sakura-13b-lnovel-v0.8-Q4_K_M.gguf")
    assert end_texts(engine) == ("</s>",)


async def test_the_end_texts_follow_the_format_that_chooses_itself_for_the_model() -> None:
    v20 = PromptFormat(
        "v2.0", render_chatml, translation_messages_v10, ("<|v2_end|>",), matches=lambda info: info.version == "2.0"
    )

    class V20Plugin:
        @hookimpl
        def register_prompt_formats(self, register: Callable[[PromptFormat], None]) -> None:
            register(v20)

    registry = PluginRegistry.create(entry_points=False, plugins=[("v20", V20Plugin())])
    engine = ReferenceEngine()
    await engine.load("sakura-14b-qwen3-v2.0-q4km.gguf")
    assert end_texts(engine, registry) == ("<|v2_end|>",)
    assert "<|im_end|>" in end_texts(await loaded(), registry)


async def test_a_random_weight_model_may_be_allowed_u_fffd_but_nothing_else() -> None:
    """allow_replacement_character lets a model's undecodable bytes through; the other rules of the check stay."""
    await check_output_text(await loaded(SplitsCharacters), DISTINCT_PROMPTS, allow_replacement_character=True)
    with pytest.raises(ConformanceError, match="above max_tokens"):
        await check_output_text(await loaded(CountsThePrompt), DISTINCT_PROMPTS, allow_replacement_character=True)
    ending = await loaded(EmitsTheEndOfText)
    with pytest.raises(ConformanceError, match="end-of-sequence text"):
        await check_output_text(ending, DISTINCT_PROMPTS, end_texts=end_texts(ending), allow_replacement_character=True)
