"""Value types shared by engines, the server and plugins: sampling parameters, deltas, model identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FinishReason = Literal["stop", "length"]
#: max_tokens when a client sends none (Sakura's recommended max_new_tokens).
DEFAULT_MAX_TOKENS = 512


class SamplingParams(BaseModel):
    """How to sample one generation. Defaults are Sakura's recommended decoding settings."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, description="Most tokens to generate.")
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    top_p: float = Field(0.3, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, description="0 disables top-k.")
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = Field(None, description="Random seed; None or a negative value means random.")
    stop: list[str] = Field(default_factory=list, description="Stop strings: generation ends before them.")
    do_sample: bool = Field(True, description="False means greedy decoding (temperature and top_* ignored).")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("seed", mode="before")
    @classmethod
    def _negative_seed_is_random(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            return None
        return value

    @property
    def greedy(self) -> bool:
        """True when the engine must pick the most likely token at every step."""
        return not self.do_sample or self.temperature == 0.0


@dataclass(slots=True)
class Delta:
    """One piece of a streaming generation.

    ``text`` is new text (never a split UTF-8 character, never a stop string); ``completion_tokens`` is the
    number of tokens generated so far, ``prompt_tokens`` the prompt's length. The last delta of a stream has
    ``finish_reason`` set and may carry empty text. An engine may leave the counts to the core (see
    ``Engine.generate``). ``cached_tokens``, from engines that reuse a cached prompt prefix, is how many of the
    prompt's tokens came from that cache (None: the engine does not say).
    """

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason | None = None
    cached_tokens: int | None = None
    # a plain dataclass, not a pydantic model: one is made per generated token


@dataclass(frozen=True, slots=True)
class SlotCache:
    """What one of an engine's parallel sequences (slots) holds in its prompt cache."""

    tokens_cached: int  # tokens whose KV-cache cells the slot keeps for the next request to reuse
    prompt_tokens_cached: int  # of its current (or last) generation's prompt, the tokens taken from the cache


@dataclass(frozen=True, slots=True)
class EngineMetric:
    """One figure only the engine knows (a prompt cache's hits, its memory), shown in ``/metrics``."""

    name: str  # lower_snake_case, shown as ``sakura_engine_<name>``; a counter's name ends in ``_total``
    kind: Literal["counter", "gauge"]
    help: str
    value: float


class ModelInfo(BaseModel):
    """Who the loaded model is. Engines fill this in from ``load``."""

    model_config = ConfigDict(defer_build=True)

    id: str = Field(description="The served model id: file base name or alias; contains the version when known.")
    name: str = Field(description="Model name, e.g. 'sakura-7b-qwen2.5'.")
    version: str | None = Field(None, description="Sakura version, e.g. '1.0', '0.9b', '0.10', '2.6'.")
    quant: str | None = Field(None, description="Quantisation, e.g. 'iq4xs', 'Q4_K_M', 'gptq'.")
    path: str = Field(description="What the user passed to --model (path or tag).")
    prompt_format: str | None = Field(
        None,
        description="Name of the prompt format chat messages are rendered with. Engines leave it None: the core"
        " chooses the format from the model's identity. An engine that names one pins it.",
    )
    context_length: int = Field(description="Tokens of context available to one sequence.")
    meta: dict[str, Any] | None = Field(
        None, description="llama-server style meta (vocab_type, n_vocab, ...) from true values only."
    )


class GenerationRequest(BaseModel):
    """A generation on its way to the engine. Plugins may rewrite ``prompt`` and ``params`` in place."""

    model_config = ConfigDict(validate_assignment=True, defer_build=True)

    prompt: str
    params: SamplingParams = Field(default_factory=SamplingParams)
    messages: list[dict[str, Any]] | None = Field(None, description="The chat messages the prompt came from.")
    request_id: str = ""
    prompt_tokens: int | None = Field(
        None, description="The prompt's length in tokens when the caller counted it (recounted if a hook rewrites it)."
    )


class GenerationResult(BaseModel):
    """A finished (or cancelled) generation, as observers see it."""

    model_config = ConfigDict(defer_build=True)

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | Literal["cancelled", "error"]
    seconds: float
    time_to_first_token: float | None = None
