"""A small, fully deterministic engine written against the contract, for testing the core and the server.

It is no model: one character is one token, and the "continuation" of a prompt is a text derived from the
prompt's last line, so tests can predict outputs exactly. It counts what runs inside it (active and peak
concurrent generations) so tests can observe admission and cancellation from the engine's side.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import Field

from sakura_core.engine import Engine, EngineError, EngineOptions
from sakura_core.identity import make_model_info
from sakura_core.stop_strings import StopStringFilter
from sakura_core.types import Delta, ModelInfo, SamplingParams

END_OF_TEXT = "<|im_end|>"


class ReferenceOptions(EngineOptions):
    """Options of the reference engine."""

    parallel: int = Field(4, ge=1, description="Sequences generated together.", json_schema_extra={"aliases": ["-np"]})
    token_delay: float = Field(0.0, ge=0.0, description="Seconds to wait before each token.")
    n_ctx: int = Field(4096, ge=16, description="Context length per sequence, in tokens.")
    answer_length: int = Field(24, ge=1, description="Tokens in a full answer before the end of text.")
    fail_on: str | None = Field(None, description="Raise an engine error when the prompt contains this text.")


class ReferenceEngine(Engine):
    """Deterministic character-level engine; the continuation cycles through the prompt's last line."""

    name: ClassVar[str] = "reference"
    description: ClassVar[str] = "Deterministic test engine: one character per token, no model"
    Options = ReferenceOptions
    options: ReferenceOptions

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.active = 0
        self.peak_active = 0
        self.started = 0

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        self.model_info = make_model_info(model, context_length=self.options.n_ctx, model_version=model_version)
        return self.model_info

    @property
    def parallelism(self) -> int:
        return self.options.parallel

    @property
    def active_generations(self) -> int:
        return self.active

    def count_tokens(self, text: str) -> int:
        return len(text)

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        """The full text this engine produces for ``prompt`` (before limits and stop strings)."""
        lines = [line for line in prompt.replace(END_OF_TEXT, "\n").splitlines() if line.strip()]
        source = (
            (lines[-2] if len(lines) >= 2 and lines[-1].startswith("<|im_start|>") else lines[-1]) if lines else "…"
        )
        length = self.options.answer_length
        if params.greedy:
            return (source * (length // max(len(source), 1) + 1))[:length]
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        rng = random.Random(hashlib.sha256(f"{seed}:{prompt}".encode()).digest())
        return "".join(rng.choice(source) for _ in range(length))

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        if self.options.fail_on and self.options.fail_on in prompt:
            raise EngineError(f"reference engine asked to fail on {self.options.fail_on!r}")
        prompt_tokens = self.count_tokens(prompt)
        if prompt_tokens >= self.options.n_ctx:
            raise EngineError(f"prompt of {prompt_tokens} tokens exceeds the context of {self.options.n_ctx}")
        answer = self.answer_for(prompt, params)
        stop_filter = StopStringFilter(params.stop)
        self.active += 1
        self.started += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            produced = 0
            for char in answer:
                await asyncio.sleep(self.options.token_delay)
                produced += 1
                text = stop_filter.feed(char)
                if stop_filter.stopped:
                    yield Delta(
                        text=text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=produced,
                        finish_reason="stop",
                    )
                    return
                if produced >= params.max_tokens:
                    text += stop_filter.flush()
                    yield Delta(
                        text=text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=produced,
                        finish_reason="length",
                    )
                    return
                yield Delta(text=text, prompt_tokens=prompt_tokens, completion_tokens=produced)
            # the end-of-text token ends the output and, per the contract, is not counted
            await asyncio.sleep(self.options.token_delay)
            yield Delta(
                text=stop_filter.flush(),
                prompt_tokens=prompt_tokens,
                completion_tokens=produced,
                finish_reason="stop",
            )
        finally:
            self.active -= 1
