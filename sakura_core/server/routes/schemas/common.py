"""Shared request/response parts: base classes, the error body, token usage and the sampling fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: Stop strings one request may send. Engines check every stop string after every token, so their number is the
#: client's to choose only within a bound; OpenAI allows 4, translation clients send one or two.
MAX_STOP_STRINGS = 16
#: Longest stop string, in characters.
MAX_STOP_CHARS = 256

StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
#: ``stop``: one string or a list of them, bounded in count and length.
StopStrings = StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)]
#: A raw prompt: a string, or a list holding exactly one string (one generation per request).
Prompt = str | Annotated[list[str], Field(min_length=1, max_length=1)]


def _refuse_text_and_booleans(kind: str, what: str) -> Any:
    """A validator that lets only JSON numbers through to a ``kind`` (``float_type``/``int_type``) field.

    Clients send these fields as JSON numbers: a string (``"0.5"``) or a boolean (``true``, which would count as
    1) is a client's mistake, refused rather than guessed at. The Sakura extras, which arrive as URL query
    strings, do not use this.
    """

    def check(value: Any) -> Any:
        if isinstance(value, bool | str):
            raise PydanticCustomError(
                kind,
                "Input should be a valid {what} (a JSON number, not {given})",
                {"what": what, "given": type(value).__name__},
            )
        return value

    return BeforeValidator(check)


#: A number field that takes only JSON numbers (an integral float is fine for an int; strings and booleans not).
JsonFloat = Annotated[float, _refuse_text_and_booleans("float_type", "number")]
JsonInt = Annotated[int, _refuse_text_and_booleans("int_type", "integer")]


def is_none(value: Any) -> bool:
    """For ``Field(exclude_if=is_none)``: leave the field out of the JSON when it has no value."""
    return value is None


class RequestModel(BaseModel):
    """A request body: fields we do not use are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class ResponseModel(BaseModel):
    """A response body: exactly the declared fields; fields with a default are still always sent."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class ErrorDetail(ResponseModel):
    """What went wrong, in OpenAI's words."""

    message: str = Field(description="What is wrong and, where possible, what to do.")
    type: str = Field(description="'invalid_request_error', 'authentication_error' or 'server_error'.")
    code: str | None = Field(description="Machine-readable reason, e.g. 'context_length_exceeded'.")
    param: str | None = Field(None, description="The request field at fault, when there is one.")


class ErrorResponse(ResponseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail


class PromptTokensDetails(ResponseModel):
    """OpenAI's breakdown of the prompt tokens."""

    cached_tokens: int = Field(ge=0, description="Prompt tokens taken from the engine's prompt cache.")


class Usage(ResponseModel):
    """Token counts reported by the engine."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0, description="Equals max_tokens only when the output was cut by the limit.")
    total_tokens: int = Field(ge=0)
    prompt_tokens_details: PromptTokensDetails | None = Field(
        None, exclude_if=is_none, description="Only from engines that reuse a cached prompt prefix."
    )

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> Usage:
        """Usage with the total filled in (and the cached prompt tokens, when the engine reported them)."""
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=None if cached_tokens is None else PromptTokensDetails(cached_tokens=cached_tokens),
        )


class SamplingFields(RequestModel):
    """Sampling fields shared by the generation routes. Absent fields take Sakura's recommended defaults.

    The Sakura extras (``do_sample``, ``num_beams``, ``repetition_penalty``, ``top_k``) may also arrive inside a
    nested ``extra_query``/``extra_body`` object or as URL query parameters; the server merges them in first.
    """

    temperature: JsonFloat | None = Field(None, ge=0.0, le=2.0, description="Default 0.1; 0 means greedy.")
    top_p: JsonFloat | None = Field(None, ge=0.0, le=1.0, description="Default 0.3; 0 means greedy.")
    top_k: int | None = Field(None, ge=0, description="Default 40; 0 disables top-k.")
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0, description="Default 1.0 (off).")
    frequency_penalty: JsonFloat | None = Field(None, ge=-2.0, le=2.0, description="Default 0.")
    presence_penalty: JsonFloat | None = Field(None, ge=-2.0, le=2.0, description="Default 0.")
    seed: JsonInt | None = Field(None, description="Random seed; absent or negative means random.")
    do_sample: bool | None = Field(None, description="False means greedy decoding.")
    num_beams: int | None = Field(None, ge=1, description="Accepted for compatibility; decoding is not beam search.")
    stop: StopStrings | None = Field(
        None,
        description=f"Stop strings (at most {MAX_STOP_STRINGS}, each at most {MAX_STOP_CHARS} characters), added to"
        " the model format's own.",
    )

    def sampling_values(self) -> dict[str, Any]:
        """The fields given, under sakura_core.types.SamplingParams names (max_tokens is the route's job)."""
        values: dict[str, Any] = {}
        for name in ("temperature", "top_k", "repetition_penalty", "frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        if self.top_p is not None:
            if self.top_p == 0.0:
                values["do_sample"] = False  # only the most likely token is left
            else:
                values["top_p"] = self.top_p
        if self.seed is not None:
            values["seed"] = self.seed
        if self.do_sample is not None:
            values["do_sample"] = values.get("do_sample", True) and self.do_sample
        if self.stop is not None:
            values["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return values
