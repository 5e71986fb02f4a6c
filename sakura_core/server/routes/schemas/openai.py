"""Bodies of the OpenAI-compatible routes: chat completions, completions, models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from sakura_core.prompts import ROLES
from sakura_core.server.routes.schemas.common import (
    JsonInt,
    Prompt,
    RequestModel,
    ResponseModel,
    SamplingFields,
    Usage,
    is_none,
)
from sakura_core.types import FinishReason

#: Turns one chat request may hold. Clients send a system prompt, some history and the text (GalTransl four turns,
#: LunaTranslator's history a few dozen); the bound makes a body of a hundred thousand tiny turns a quick 400
#: instead of a second of validation.
MAX_MESSAGES = 1024
#: Content parts one message may hold (clients send one text part).
MAX_CONTENT_PARTS = 256


class ContentPart(RequestModel):
    """One part of a message's content, as newer OpenAI clients send it: a translation model reads text only."""

    type: Literal["text"] = Field("text", description="Only text parts are accepted (no images or audio).")
    text: str


class ChatMessage(RequestModel):
    """One conversation turn. Roles: system, user, assistant, in any order; content is rendered verbatim."""

    # validated with the prompt formats' own check (sakura_core.prompts.validate_messages), which names the
    # message at fault; the schema says the same
    role: str = Field(description="'system', 'user' or 'assistant'.", json_schema_extra={"enum": list(ROLES)})
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The message as the prompt formats read it."""
        if isinstance(self.content, list):
            content: Any = [part.model_dump() for part in self.content]
        else:
            content = self.content
        return {"role": self.role, "content": content}


class StreamOptions(RequestModel):
    """``stream_options``: ``include_usage`` adds a last chunk with ``choices: []`` and ``usage``."""

    include_usage: bool = False


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions``. ``model`` picks the served model (the default for an empty or unknown name)."""

    model: str | None = Field(
        None, description="Picks a served model by id or alias; empty or unknown: the default model."
    )
    # an empty list is refused by validate_messages (param "messages"), as the schema's minItems says
    messages: list[ChatMessage] = Field(
        description=f"At least one message, at most {MAX_MESSAGES}.",
        max_length=MAX_MESSAGES,
        json_schema_extra={"minItems": 1},
    )
    max_tokens: JsonInt | None = Field(None, ge=1, description="Default 512; lowered to what the context leaves.")
    max_completion_tokens: JsonInt | None = Field(
        None, ge=1, description="Same as max_tokens (used when it is absent)."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionRequest(SamplingFields):
    """``POST /v1/completions``: a raw prompt, already in the model's format."""

    model: str | None = Field(
        None, description="Picks a served model by id or alias; empty or unknown: the default model."
    )
    prompt: Prompt = Field(description="The raw prompt (a list must hold exactly one string).")
    max_tokens: JsonInt | None = Field(None, ge=1, description="Default 512; lowered to what the context leaves.")
    stream: bool = False
    stream_options: StreamOptions | None = None


class AssistantMessage(ResponseModel):
    """The generated message; ``content`` is never null and carries no special tokens."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(ResponseModel):
    """The one choice of a chat completion."""

    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason = Field(description="'length' when cut by max_tokens, else 'stop'.")


class ChatCompletionResponse(ResponseModel):
    """A non-streamed chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="The served model id, as in GET /v1/models.")
    choices: list[ChatCompletionChoice]
    usage: Usage


class ChunkDelta(ResponseModel):
    """What a chunk adds: the role (first chunk), text (later chunks), nothing (the final chunk)."""

    role: Literal["assistant"] | None = Field(None, exclude_if=is_none)
    content: str | None = Field(None, exclude_if=is_none)


class ChatCompletionChunkChoice(ResponseModel):
    """The one choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(ResponseModel):
    """One ``data:`` event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = Field(None, exclude_if=is_none, description="Only in the usage chunk.")


class CompletionChoice(ResponseModel):
    """The one choice of a completion (or of a completion stream chunk)."""

    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: FinishReason | None = None


class CompletionResponse(ResponseModel):
    """A non-streamed completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunk(ResponseModel):
    """One ``data:`` event of a streamed completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = Field(None, exclude_if=is_none, description="Only in the usage chunk.")


class ModelLoadStatus(ResponseModel):
    """A served model's state, as llama-server's router reports it."""

    value: Literal["loaded", "loading", "unloaded", "failed"]
    failure: str | None = Field(None, exclude_if=is_none, description="Why the last load failed.")


class ModelCard(ResponseModel):
    """The served model, in llama-server's shape plus the original Sakura server's fields."""

    id: str = Field(description="File base name or --alias; contains the Sakura version.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sakura"
    meta: dict[str, Any] | None = Field(
        None, exclude_if=is_none, description="llama-server's meta, only from true values read from the model."
    )
    model_name: str
    model_version: str | None
    model_quant: str | None
    model_name_or_path: str
    status: ModelLoadStatus | None = Field(
        None, exclude_if=is_none, description="Only when several models are served: whether this one is loaded."
    )


class ModelList(ResponseModel):
    """``GET /v1/models``: ``data[0]`` is the served model."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
