"""OpenAI-compatible routes: chat completions, completions, models (with and without the ``/v1`` prefix)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import web

from sakura_core.server.httpio import json_response, parse, read_json, to_json
from sakura_core.server.jsontemplate import StringFieldTemplate
from sakura_core.server.keys import STATE
from sakura_core.server.metrics import GenerationRecord
from sakura_core.server.routespec import GENERATION_ERRORS, MODEL_ERRORS, RouteSpec
from sakura_core.server.sampling import merge_sakura_extras
from sakura_core.server.schemas.common import Usage
from sakura_core.server.schemas.openai import (
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
)
from sakura_core.server.service import DEFAULT_MAX_TOKENS
from sakura_core.server.streaming import run_as_events, run_to_end
from sakura_core.types import Delta, FinishReason


def usage_of(record: GenerationRecord) -> Usage:
    """The usage of a finished generation, with the cached prompt tokens when the engine reported them."""
    return Usage.of(record.prompt_tokens, record.completion_tokens, record.cached_tokens)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Render the messages with the model's prompt format and generate, as JSON or as a chunk stream."""
    state = request.app[STATE]
    service = state.require_service()
    body = await read_json(request, state.body_limits())
    chat = parse(ChatCompletionRequest, merge_sakura_extras(body, request.query))
    messages = [message.as_dict() for message in chat.messages]
    prompt = service.render(messages)
    generation = await service.prepare(
        prompt,
        chat.sampling_values(),
        max_tokens=chat.max_tokens or chat.max_completion_tokens or DEFAULT_MAX_TOKENS,
        messages=messages,
        prompt_param="messages",
    )
    completion_id = f"chatcmpl-{generation.request_id}"
    created = int(time.time())
    model_id = service.model_info.id
    if chat.stream:
        include_usage = chat.stream_options is not None and chat.stream_options.include_usage
        renderer = ChatChunks(completion_id, created, model_id, include_usage)
        return await run_as_events(request, service.admit(), generation, renderer)
    done = await run_to_end(request, service.admit(), generation)
    return json_response(
        ChatCompletionResponse(
            id=completion_id,
            created=created,
            model=model_id,
            choices=[
                ChatCompletionChoice(message=AssistantMessage(content=done.text), finish_reason=done.finish_reason)
            ],
            usage=usage_of(done.record),
        )
    )


class ChatChunks:
    """Chat stream events: a role chunk, one chunk per piece of text, a final chunk, maybe a usage chunk."""

    done_marker = True

    def __init__(self, id: str, created: int, model: str, include_usage: bool) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.finished = False
        self.content = StringFieldTemplate(lambda text: self._chunk(ChunkDelta(content=text)))

    def _chunk(self, delta: ChunkDelta, finish_reason: FinishReason | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChatCompletionChunkChoice(delta=delta, finish_reason=finish_reason)],
        )

    def opening(self) -> Sequence[bytes]:
        return [to_json(self._chunk(ChunkDelta(role="assistant", content="")))]

    def delta(self, delta: Delta) -> Sequence[bytes]:
        if delta.finish_reason is None:
            return [self.content.fill(delta.text)] if delta.text else []
        self.finished = True
        final = to_json(self._chunk(ChunkDelta(), delta.finish_reason))
        return [self.content.fill(delta.text), final] if delta.text else [final]

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        events = [] if self.finished else [to_json(self._chunk(ChunkDelta(), "stop"))]
        if self.include_usage:
            usage = usage_of(record)
            events.append(
                to_json(
                    ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)
                )
            )
        return events


async def completions(request: web.Request) -> web.StreamResponse:
    """Generate from a raw prompt (already in the model's format), as JSON or as a chunk stream."""
    state = request.app[STATE]
    service = state.require_service()
    body = parse(CompletionRequest, merge_sakura_extras(await read_json(request, state.body_limits()), request.query))
    prompt = single_prompt(body.prompt)
    generation = await service.prepare(prompt, body.sampling_values(), max_tokens=body.max_tokens or DEFAULT_MAX_TOKENS)
    completion_id = f"cmpl-{generation.request_id}"
    created = int(time.time())
    model_id = service.model_info.id
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        renderer = CompletionChunks(completion_id, created, model_id, include_usage)
        return await run_as_events(request, service.admit(), generation, renderer)
    done = await run_to_end(request, service.admit(), generation)
    return json_response(
        CompletionResponse(
            id=completion_id,
            created=created,
            model=model_id,
            choices=[CompletionChoice(text=done.text, finish_reason=done.finish_reason)],
            usage=usage_of(done.record),
        )
    )


def single_prompt(prompt: str | list[str]) -> str:
    """The one prompt of a request (validation lets a list through only when it holds exactly one)."""
    return prompt if isinstance(prompt, str) else prompt[0]


class CompletionChunks:
    """Completion stream events: one chunk per piece of text, a final chunk, maybe a usage chunk."""

    done_marker = True

    def __init__(self, id: str, created: int, model: str, include_usage: bool) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.finished = False
        self.text = StringFieldTemplate(lambda text: self._chunk(text))

    def _chunk(self, text: str, finish_reason: FinishReason | None = None) -> CompletionChunk:
        return CompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[CompletionChoice(text=text, finish_reason=finish_reason)],
        )

    def opening(self) -> Sequence[bytes]:
        return []

    def delta(self, delta: Delta) -> Sequence[bytes]:
        events = [self.text.fill(delta.text)] if delta.text else []
        if delta.finish_reason is not None:
            events.append(to_json(self._chunk("", delta.finish_reason)))
            self.finished = True
        return events

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        events = [] if self.finished else [to_json(self._chunk("", "stop"))]
        if self.include_usage:
            usage = usage_of(record)
            events.append(
                to_json(CompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage))
            )
        return events


async def models(request: web.Request) -> web.Response:
    """The served model, as llama-server lists it, with the original Sakura server's identity fields."""
    state = request.app[STATE]
    info = state.require_model()
    card = ModelCard(
        id=info.id,
        created=state.created,
        meta=info.meta,
        model_name=info.name,
        model_version=info.version,
        model_quant=info.quant,
        model_name_or_path=info.path,
    )
    return json_response(ModelList(data=[card]))


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
