"""Bodies of the llama-server routes clients lean on: /completion, /slots, /health."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, RootModel

from sakura_core.server.routes.schemas.common import (
    JsonFloat,
    JsonInt,
    Prompt,
    RequestModel,
    ResponseModel,
    StopStrings,
    is_none,
)


class LlamaCompletionRequest(RequestModel):
    """``POST /completion``, llama-server's native completion (the sharing network proxies it)."""

    prompt: Prompt = Field(description="The raw prompt (a list must hold exactly one string).")
    model: Any = Field(
        None, description="A served model's id or alias (several models); anything else: the default model."
    )
    n_predict: JsonInt | None = Field(
        None,
        description="Tokens to generate; absent or negative: as many as fit. 0 is refused.",
        json_schema_extra={"not": {"const": 0}},
    )
    max_tokens: JsonInt | None = Field(None, ge=1, description="Same as n_predict (used when it is absent).")
    temperature: JsonFloat | None = Field(None, ge=0.0, le=2.0)
    top_p: JsonFloat | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=2.0)
    frequency_penalty: JsonFloat | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: JsonFloat | None = Field(None, ge=-2.0, le=2.0)
    seed: JsonInt | None = None
    stop: StopStrings | None = None
    stream: bool = False

    def sampling_values(self) -> dict[str, Any]:
        """The fields given, under sakura_core.types.SamplingParams names (max_tokens is the route's job)."""
        values: dict[str, Any] = {}
        for source, target in (
            ("temperature", "temperature"),
            ("top_k", "top_k"),
            ("repeat_penalty", "repetition_penalty"),
            ("frequency_penalty", "frequency_penalty"),
            ("presence_penalty", "presence_penalty"),
            ("seed", "seed"),
        ):
            value = getattr(self, source)
            if value is not None:
                values[target] = value
        if self.top_p is not None:
            values.update({"do_sample": False} if self.top_p == 0.0 else {"top_p": self.top_p})
        if self.stop is not None:
            values["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return values


class LlamaTimings(ResponseModel):
    """Prompt and generation timings, as llama-server reports them."""

    cache_n: int | None = Field(
        None, exclude_if=is_none, description="Prompt tokens taken from the cache (engines that keep one)."
    )
    prompt_n: int = Field(description="Prompt tokens processed (the cached ones not counted).")
    prompt_ms: float
    prompt_per_token_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_token_ms: float
    predicted_per_second: float


class LlamaCompletionResponse(ResponseModel):
    """The answer of ``POST /completion``, and the last event of its stream (then with ``content: ""``)."""

    content: str
    model: str
    stop: Literal[True] = True
    id_slot: int
    tokens_predicted: int
    tokens_evaluated: int
    stop_type: Literal["eos", "limit"] = Field(description="'limit' when cut by n_predict, else 'eos'.")
    stopped_eos: bool
    stopped_limit: bool
    stopped_word: bool = False
    stopping_word: str = ""
    truncated: bool = False
    timings: LlamaTimings


class LlamaCompletionChunk(ResponseModel):
    """A streamed piece of ``POST /completion`` output."""

    content: str
    stop: Literal[False] = False
    id_slot: int
    tokens_predicted: int


class SlotInfo(ResponseModel):
    """One parallel sequence of the engine."""

    id: int
    state: Literal[0, 1] = Field(description="0 idle, 1 busy.")
    is_processing: bool
    n_ctx: int = Field(description="Context length of one sequence, in tokens.")
    tokens_cached: int | None = Field(
        None, exclude_if=is_none, description="Tokens the slot keeps in its prompt cache (engines that keep one)."
    )
    n_prompt_tokens_cache: int | None = Field(
        None, exclude_if=is_none, description="Of its current or last prompt, the tokens taken from the cache."
    )


class SlotList(RootModel[list[SlotInfo]]):
    """``GET /slots``: one entry per parallel sequence (clients size their worker pools by its length)."""


class HealthResponse(ResponseModel):
    """``GET /health``: 200 ``ok`` once loaded; 503 ``loading model``, ``shutting down`` or ``engine unavailable``
    (with the engine's ``reason``)."""

    status: Literal["ok", "loading model", "shutting down", "engine unavailable"]
    slots_idle: int | None = Field(None, exclude_if=is_none)
    slots_processing: int | None = Field(None, exclude_if=is_none)
    reason: str | None = Field(None, exclude_if=is_none, description="Why the engine cannot serve.")
