"""Sakura's own translation features: a translation with degeneration retry, and the start-up self-check."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from sakura_core.engine import Engine
from sakura_core.engine_runner import EngineRunner
from sakura_core.generation import complete
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import GlossaryEntry, PromptFormat, format_glossary
from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo, SamplingParams

logger = logging.getLogger(__name__)

#: frequency_penalty values tried, in order, while the output keeps running into the token limit.
DEGENERATION_RETRY_PENALTIES = (0.05, 0.2)
SELF_CHECK_INPUT = "やる気マンゴスキン"
SELF_CHECK_EXPECTED = "干劲Mangoskin"


class Translation(BaseModel):
    """A translation and how it was obtained."""

    text: str
    attempts: list[GenerationResult]

    @property
    def degenerated(self) -> bool:
        """True when even the last attempt ran into the token limit."""
        return self.attempts[-1].finish_reason == "length"


def translation_prompt(
    prompt_format: PromptFormat,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
) -> tuple[list[dict[str, str]], str]:
    """The canonical messages for translating ``text`` with this format, and the raw prompt they render to."""
    messages = prompt_format.translation_messages(text, format_glossary(glossary), history)
    return messages, prompt_format.render(messages)


#: Runs one generation to its end: an engine in-process, or a server over HTTP.
CompleteRequest = Callable[[GenerationRequest], Awaitable[GenerationResult]]


async def translate(
    engine: Engine,
    registry: PluginRegistry,
    model: ModelInfo,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
    params: SamplingParams | None = None,
) -> Translation:
    """Translate ``text``; an output that hits the token limit is retried with frequency_penalty 0.05, then 0.2."""

    async def run(request: GenerationRequest) -> GenerationResult:
        return await complete(engine, registry, request, model)

    prompt_format = registry.prompt_format(model.prompt_format)
    return await translate_with(run, prompt_format, text, glossary, history, params)


async def translate_with(
    complete_request: CompleteRequest,
    prompt_format: PromptFormat,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
    params: SamplingParams | None = None,
) -> Translation:
    """``translate`` through any way of generating: ``complete_request`` runs each attempt (the request carries
    both the canonical messages and the prompt they render to in ``prompt_format``)."""
    messages, prompt = translation_prompt(prompt_format, text, glossary, history)
    base = params or SamplingParams()
    attempts: list[GenerationResult] = []
    for penalty in (base.frequency_penalty, *DEGENERATION_RETRY_PENALTIES):
        attempt_params = base.model_copy(update={"frequency_penalty": penalty})
        request = GenerationRequest(prompt=prompt, params=attempt_params, messages=messages)
        result = await complete_request(request)
        attempts.append(result)
        if result.finish_reason != "length":
            break
        logger.info("translation degenerated (hit %d tokens); retrying", attempt_params.max_tokens)
    return Translation(text=attempts[-1].text, attempts=attempts)


class SelfCheck(BaseModel):
    """The outcome of the start-up self-check."""

    output: str
    passed: bool


async def self_check(engine: Engine | EngineRunner, registry: PluginRegistry, model: ModelInfo) -> SelfCheck:
    """Translate やる気マンゴスキン greedily (20 tokens); a genuine Sakura model answers 干劲Mangoskin.

    A mismatch is logged as a warning, never an error: fine-tunes and test models answer differently.
    """
    prompt_format = registry.prompt_format(model.prompt_format)
    _, prompt = translation_prompt(prompt_format, SELF_CHECK_INPUT)
    params = SamplingParams(max_tokens=20, do_sample=False, stop=list(prompt_format.stop))
    result = await complete(engine, registry, GenerationRequest(prompt=prompt, params=params), model)
    output = result.text.strip()
    passed = output == SELF_CHECK_EXPECTED
    if passed:
        logger.info("self-check passed: %s → %s", SELF_CHECK_INPUT, output)
    else:
        logger.warning(
            "self-check: %s translated to %r, a genuine Sakura model answers %r; check the model and --model-version",
            SELF_CHECK_INPUT,
            output,
            SELF_CHECK_EXPECTED,
        )
    return SelfCheck(output=output, passed=passed)
