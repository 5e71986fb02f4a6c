"""The conformance kit: pytest tests that check an engine against the engine contract.

Subclass ``EngineConformance`` in your plugin's tests and give it a class-scoped ``engine`` fixture that yields a
loaded engine (the kit never closes it)::

    from sakura_core.testing.conformance import EngineConformance

    class TestMyEngineConformance(EngineConformance):
        @pytest.fixture(scope="class")
        async def engine(self):
            engine = MyEngine(MyEngine.Options())
            await engine.load("./sakura-tiny-v1.0.gguf")
            yield engine
            await engine.close()

The inherited tests run every check of ``sakura_core.testing.checks`` on that engine. The prompts are translation
prompts rendered with the model's prompt format; override the ``conformance_prompts`` fixture to use others, and
``conformance_end_texts`` for a model whose end-of-sequence texts are not its prompt format's stop strings, and the
``conformance_*`` class attributes to change the token budget, the time limit, the concurrency limit or how long the
event loop may stay blocked.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from sakura_core.engine import Engine
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import PromptFormat, translation_prompt
from sakura_core.testing.checks import (
    DEFAULT_BLOCK_LIMIT,
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TIME_LIMIT,
    ConformanceError,
    GenerationRun,
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
    run_generation,
)

__all__ = [
    "DEFAULT_TEXTS",
    "ConformanceError",
    "EngineConformance",
    "GenerationRun",
    "check_cancellation",
    "check_concurrent_generations",
    "check_deltas_join",
    "check_engine_basics",
    "check_event_loop_responsive",
    "check_finish_reasons",
    "check_greedy_deterministic",
    "check_max_tokens",
    "check_output_text",
    "check_seeded_sampling",
    "check_stop_strings",
    "check_token_counts",
    "default_prompts",
    "end_texts",
    "run_generation",
]

#: Japanese lines the default prompts ask to translate; different lines, so concurrent outputs can be told apart.
DEFAULT_TEXTS = (
    "やる気マンゴスキン",
    "「おはようございます、先輩。今日もいい天気ですね」",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。",
    "ありがとう。本当に、ありがとう。",
    "雨の音で目が覚めた。",
    "「待って！　まだ話は終わってない！」",
)


def _served_prompt_format(engine: Engine, registry: PluginRegistry | None) -> PromptFormat:
    """The prompt format a server would serve the engine's model with (the installed plugins' formats included,
    unless ``registry`` replaces them)."""
    model = engine.model_info
    if model is None:
        raise ConformanceError("the engine fixture must yield a loaded engine: its model_info is None")
    registry = registry if registry is not None else PluginRegistry.create()
    if model.prompt_format is not None and model.prompt_format not in registry.prompt_formats():
        raise ConformanceError(
            f"the model's prompt format {model.prompt_format!r} is not registered; register it or override"
            " conformance_prompts (and conformance_end_texts)"
        )
    return registry.prompt_format_for(model)


def default_prompts(engine: Engine, texts: tuple[str, ...] = DEFAULT_TEXTS) -> list[str]:
    """Translation prompts for ``texts``, rendered with the loaded model's prompt format."""
    prompt_format = _served_prompt_format(engine, None)
    return [translation_prompt(prompt_format, text)[1] for text in texts]


def end_texts(engine: Engine, registry: PluginRegistry | None = None) -> tuple[str, ...]:
    """The loaded model's end-of-sequence texts: the stop strings (``<|im_end|>``, ``</s>``) of the prompt format
    it is served with. ``registry`` replaces the installed plugins (for tests that register formats in-process)."""
    return tuple(_served_prompt_format(engine, registry).stop)


class EngineConformance:
    """Pytest tests of the engine contract, inherited by a ``Test*`` subclass that provides ``engine``.

    Class attributes tune the checks: ``conformance_max_tokens`` (tokens per generation, default 16),
    ``conformance_time_limit`` (seconds one generation may take), ``conformance_concurrency_limit`` (most
    generations run at once by the concurrency check; it runs ``engine.parallelism`` up to this limit),
    ``conformance_block_limit`` (most seconds the event loop may stay blocked while the engine generates) and
    ``conformance_allow_replacement_character`` (True only for a random-weight model, whose output may hold bytes
    that are no UTF-8).
    """

    #: Marked for pytest-asyncio, so the tests also run in its strict mode.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]
    conformance_max_tokens: ClassVar[int] = DEFAULT_MAX_TOKENS
    conformance_time_limit: ClassVar[float] = DEFAULT_TIME_LIMIT
    conformance_concurrency_limit: ClassVar[int] = DEFAULT_CONCURRENCY_LIMIT
    conformance_block_limit: ClassVar[float] = DEFAULT_BLOCK_LIMIT
    #: True for a random-weight test model, whose output holds bytes that are no UTF-8 (see check_output_text).
    conformance_allow_replacement_character: ClassVar[bool] = False

    def conformance_limits(self) -> dict[str, Any]:
        """The token budget and time limit every check is called with."""
        return {"max_tokens": self.conformance_max_tokens, "time_limit": self.conformance_time_limit}

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_prompts(cls, engine: Engine) -> list[str]:
        """Raw prompts the checks use: by default translation prompts in the model's prompt format."""
        return default_prompts(engine)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_end_texts(cls, engine: Engine) -> tuple[str, ...]:
        """Texts the output never contains: by default the stop strings of the model's prompt format."""
        return end_texts(engine)

    async def test_engine_basics(self, engine: Engine) -> None:
        await check_engine_basics(engine)

    async def test_deltas_join(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_deltas_join(engine, conformance_prompts, **self.conformance_limits())

    async def test_finish_reasons(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_finish_reasons(engine, conformance_prompts, **self.conformance_limits())

    async def test_max_tokens(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_max_tokens(engine, conformance_prompts, **self.conformance_limits())

    async def test_stop_strings(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_stop_strings(engine, conformance_prompts, **self.conformance_limits())

    async def test_greedy_deterministic(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_greedy_deterministic(engine, conformance_prompts, **self.conformance_limits())

    async def test_seeded_sampling(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_seeded_sampling(engine, conformance_prompts, **self.conformance_limits())

    async def test_token_counts(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_token_counts(engine, conformance_prompts, **self.conformance_limits())

    async def test_concurrent_generations(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_concurrent_generations(
            engine,
            conformance_prompts,
            limit=self.conformance_concurrency_limit,
            **self.conformance_limits(),
        )

    async def test_cancellation(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_cancellation(engine, conformance_prompts, **self.conformance_limits())

    async def test_event_loop_responsive(self, engine: Engine, conformance_prompts: list[str]) -> None:
        await check_event_loop_responsive(
            engine, conformance_prompts, block_limit=self.conformance_block_limit, **self.conformance_limits()
        )

    async def test_output_text(
        self, engine: Engine, conformance_prompts: list[str], conformance_end_texts: tuple[str, ...]
    ) -> None:
        await check_output_text(
            engine,
            conformance_prompts,
            end_texts=conformance_end_texts,
            allow_replacement_character=self.conformance_allow_replacement_character,
            **self.conformance_limits(),
        )
