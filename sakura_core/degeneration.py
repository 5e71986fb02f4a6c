"""Translating with retries on degeneration: an output that runs into the token limit is tried again with a
frequency penalty, as Sakura's own tools do."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from sakura_core.prompts import GlossaryEntry, PromptFormat, translation_prompt
from sakura_core.types import GenerationRequest, GenerationResult, SamplingParams

logger = logging.getLogger(__name__)

#: frequency_penalty values tried, in order, while the output keeps running into the token limit.
DEGENERATION_RETRY_PENALTIES = (0.05, 0.2)

#: Runs one generation to its end: an engine in-process, or a server over HTTP.
CompleteRequest = Callable[[GenerationRequest], Awaitable[GenerationResult]]


class Translation(BaseModel):
    """A translation and how it was obtained."""

    text: str
    attempts: list[GenerationResult]

    @property
    def degenerated(self) -> bool:
        """True when even the last attempt ran into the token limit."""
        return self.attempts[-1].finish_reason == "length"


async def translate_with(
    complete_request: CompleteRequest,
    prompt_format: PromptFormat,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
    params: SamplingParams | None = None,
) -> Translation:
    """Translate ``text`` through any way of generating; an output that hits the token limit is retried with
    frequency_penalty 0.05, then 0.2. ``complete_request`` runs each attempt (the request carries both the
    canonical messages and the prompt they render to in ``prompt_format``)."""
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
