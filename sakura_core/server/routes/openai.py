"""OpenAI-compatible routes: chat completions, completions, models (with and without the ``/v1`` prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.httpio import json_response, to_json
from sakura_core.server.http.jsontemplate import StringFieldTemplate
from sakura_core.server.keys import STATE
from sakura_core.server.routes.handler import Admitted, Plan, generation_handler
from sakura_core.server.routes.schemas.common import Usage
from sakura_core.server.routes.schemas.openai import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkDelta,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    ModelLoadStatus,
)
from sakura_core.server.routes.spec import GENERATION_ERRORS, MODEL_ERRORS, RouteSpec
from sakura_core.server.routes.streaming import Completed
from sakura_core.types import Delta, FinishReason

Chunk = TypeVar("Chunk", ChatCompletionChunk, CompletionChunk)


def usage_of(record: GenerationRecord) -> Usage:
    """The usage of a finished generation, with the cached prompt tokens when the engine reported them."""
    return Usage.of(record.prompt_tokens, record.completion_tokens, record.cached_tokens)


def include_usage(body: ChatCompletionRequest | CompletionRequest) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return body.stream_options is not None and body.stream_options.include_usage


def plan_chat(body: ChatCompletionRequest, service: GenerationService) -> Plan:
    """Chat messages rendered with the model's prompt format (the shared handler has validated them)."""
    messages = [message.as_dict() for message in body.messages]
    return Plan(
        prompt=service.model.prompt_format.render(messages),
        sampling=body.sampling_values(),
        max_tokens=body.max_tokens or body.max_completion_tokens,
        stream=body.stream,
        messages=messages,
        prompt_param="messages",
    )


def envelope(prefix: str, admitted: Admitted) -> dict[str, Any]:
    """The fields every answer and chunk of a completion carries: its id, creation time and model."""
    return {"id": f"{prefix}-{admitted.request_id}", "created": admitted.created, "model": admitted.model_id}


def chat_events(body: ChatCompletionRequest, admitted: Admitted) -> ChatChunks:
    return ChatChunks(**envelope("chatcmpl", admitted), include_usage=include_usage(body))


def chat_answer(body: ChatCompletionRequest, admitted: Admitted, done: Completed) -> ChatCompletionResponse:
    message = AssistantMessage(content=done.text)
    return ChatCompletionResponse(
        **envelope("chatcmpl", admitted),
        choices=[ChatCompletionChoice(message=message, finish_reason=done.finish_reason)],
        usage=usage_of(done.record),
    )


def plan_completion(body: CompletionRequest, service: GenerationService) -> Plan:
    """A raw prompt, already in the model's format."""
    return Plan(single_prompt(body.prompt), body.sampling_values(), body.max_tokens, body.stream)


def completion_events(body: CompletionRequest, admitted: Admitted) -> CompletionChunks:
    return CompletionChunks(**envelope("cmpl", admitted), include_usage=include_usage(body))


def completion_answer(body: CompletionRequest, admitted: Admitted, done: Completed) -> CompletionResponse:
    choice = CompletionChoice(text=done.text, finish_reason=done.finish_reason)
    return CompletionResponse(**envelope("cmpl", admitted), choices=[choice], usage=usage_of(done.record))


def single_prompt(prompt: str | list[str]) -> str:
    """The one prompt of a request (validation lets a list through only when it holds exactly one)."""
    return prompt if isinstance(prompt, str) else prompt[0]


class OpenAIChunks(Generic[Chunk]):
    """The chunk stream both OpenAI routes share: a final chunk with the finish reason, maybe a usage chunk."""

    done_marker = True

    def __init__(self, id: str, created: int, model: str, include_usage: bool) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.finished = False
        self.text = StringFieldTemplate(lambda text: self.text_chunk(text))

    def text_chunk(self, text: str) -> Chunk:
        """A chunk carrying a piece of text."""
        raise NotImplementedError

    def final_chunk(self, finish_reason: FinishReason) -> Chunk:
        """The chunk that ends the choice with its finish reason."""
        raise NotImplementedError

    def usage_chunk(self, usage: Usage) -> Chunk:
        """The chunk, with no choices, that carries the usage."""
        raise NotImplementedError

    def opening(self) -> Sequence[bytes]:
        return []

    def delta(self, delta: Delta) -> Sequence[bytes]:
        events = [self.text.fill(delta.text)] if delta.text else []
        if delta.finish_reason is not None:
            events.append(to_json(self.final_chunk(delta.finish_reason)))
            self.finished = True
        return events

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        events = [] if self.finished else [to_json(self.final_chunk("stop"))]
        if self.include_usage:
            events.append(to_json(self.usage_chunk(usage_of(record))))
        return events


class ChatChunks(OpenAIChunks[ChatCompletionChunk]):
    """Chat stream events: a role chunk, one chunk per piece of text, a final chunk, maybe a usage chunk."""

    def _chunk(self, delta: ChunkDelta, finish_reason: FinishReason | None = None) -> ChatCompletionChunk:
        choice = ChatCompletionChunkChoice(delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[choice])

    def text_chunk(self, text: str) -> ChatCompletionChunk:
        return self._chunk(ChunkDelta(content=text))

    def final_chunk(self, finish_reason: FinishReason) -> ChatCompletionChunk:
        return self._chunk(ChunkDelta(), finish_reason)

    def usage_chunk(self, usage: Usage) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)

    def opening(self) -> Sequence[bytes]:
        return [to_json(self._chunk(ChunkDelta(role="assistant", content="")))]


class CompletionChunks(OpenAIChunks[CompletionChunk]):
    """Completion stream events: one chunk per piece of text, a final chunk, maybe a usage chunk."""

    def _chunk(self, text: str, finish_reason: FinishReason | None = None) -> CompletionChunk:
        choice = CompletionChoice(text=text, finish_reason=finish_reason)
        return CompletionChunk(id=self.id, created=self.created, model=self.model, choices=[choice])

    def text_chunk(self, text: str) -> CompletionChunk:
        return self._chunk(text)

    def final_chunk(self, finish_reason: FinishReason) -> CompletionChunk:
        return self._chunk("", finish_reason)

    def usage_chunk(self, usage: Usage) -> CompletionChunk:
        return CompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)


chat_completions = generation_handler(
    ChatCompletionRequest,
    plan_chat,
    chat_events,
    chat_answer,
    doc="Render the messages with the model's prompt format and generate, as JSON or as a chunk stream.",
    sakura_extras=True,
)
completions = generation_handler(
    CompletionRequest,
    plan_completion,
    completion_events,
    completion_answer,
    doc="Generate from a raw prompt (already in the model's format), as JSON or as a chunk stream.",
    sakura_extras=True,
)


async def models(request: web.Request) -> web.Response:
    """The served models, as llama-server lists them, with the original Sakura server's identity fields; the
    default model first (``data[0]``)."""
    state = request.app[STATE]
    state.require_model()
    several = len(state.models) > 1
    cards = []
    for entry in state.models:
        status = ModelLoadStatus(value=entry.status.value, failure=entry.failure) if several else None
        if entry.model is None:
            card = ModelCard(
                id=entry.id,
                created=state.created,
                model_name=entry.id,
                model_version=None,
                model_quant=None,
                model_name_or_path=entry.source,
                status=status,
            )
        else:
            info = entry.model.info
            card = ModelCard(
                id=info.id,
                created=state.created,
                meta=info.meta,
                model_name=info.name,
                model_version=info.version,
                model_quant=info.quant,
                model_name_or_path=info.path,
                status=status,
            )
        cards.append(card)
    return json_response(ModelList(data=cards))


_CHAT = "Chat completion: messages are rendered with the model's Sakura prompt format."
_COMPLETION = "Completion from a raw prompt in the model's own format."
_MODELS = "The served model (data[0]); its id contains the Sakura version."

ROUTES = [
    RouteSpec(
        "POST",
        path,
        chat_completions,
        _CHAT,
        request=ChatCompletionRequest,
        response=ChatCompletionResponse,
        stream_events=(ChatCompletionChunk,),
        stream_done=True,
        errors=GENERATION_ERRORS,
        sakura_query=True,
        tags=("openai",),
    )
    for path in ("/v1/chat/completions", "/chat/completions")
] + [
    RouteSpec(
        "POST",
        "/v1/completions",
        completions,
        _COMPLETION,
        request=CompletionRequest,
        response=CompletionResponse,
        stream_events=(CompletionChunk,),
        stream_done=True,
        errors=GENERATION_ERRORS,
        sakura_query=True,
        tags=("openai",),
    )
]
ROUTES += [
    RouteSpec("GET", path, models, _MODELS, response=ModelList, errors=MODEL_ERRORS, tags=("openai",))
    for path in ("/v1/models", "/models")
]
