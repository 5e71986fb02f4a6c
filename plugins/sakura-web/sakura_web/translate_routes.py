"""``GET /translate/info`` and ``POST /translate``: the served model for the page, and text translated through the
server's own scheduler (the same slots, queue and metrics as API clients)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.http.errors import invalid_request
from sakura_core.server.http.httpio import json_response, parse, read_body_as, to_json
from sakura_core.server.keys import STATE
from sakura_core.server.routes.spec import GENERATION_ERRORS, MODEL_ERRORS, RouteSpec
from sakura_core.server.routes.streaming import run_as_events, run_to_end
from sakura_core.types import Delta
from sakura_web.file_formats import file_formats
from sakura_web.options import WebOptions
from sakura_web.presets import PRESETS
from sakura_web.prompting import default_max_tokens, render_translation
from sakura_web.sampling import sampling_for
from sakura_web.schemas import (
    AuthInfo,
    Limits,
    TranslateDelta,
    TranslateDone,
    TranslateInfo,
    TranslateRequest,
    TranslateResponse,
    Usage,
)


def web_options(request: web.Request) -> WebOptions:
    """The workbench's ``sakura run`` options (their defaults when none were given)."""
    options = request.app[STATE].run_options.get(WebOptions)
    return options if isinstance(options, WebOptions) else WebOptions()


async def translate_info(request: web.Request) -> web.Response:
    """The served model, its prompt format and slots, the sampling presets, the file formats jobs read and the
    limits."""
    state = request.app[STATE]
    service = state.require_service()
    info = service.model_info
    options = web_options(request)
    return json_response(
        TranslateInfo(
            model=info.id,
            name=info.name,
            version=info.version,
            quant=info.quant,
            prompt_format=service.model.prompt_format.name,
            context_length=info.context_length,
            parallelism=service.scheduler.capacity,
            presets=list(PRESETS),
            file_formats=file_formats(),
            limits=Limits(
                max_upload_bytes=options.max_upload_bytes,
                max_jobs_per_client=options.jobs_per_client,
                max_text_chars=options.max_text_chars,
            ),
        )
    )


async def auth_info(request: web.Request) -> web.Response:
    """Whether the API needs credentials and which kinds (public: the page asks for a key before its first call
    instead of after a 401)."""
    policy = request.app[STATE].auth
    schemes: list[Literal["bearer", "basic"]] = []
    if policy.api_key is not None:
        schemes.append("bearer")
    if policy.basic is not None or policy.api_key is not None:
        schemes.append("basic")
    return json_response(AuthInfo(required=policy.required, schemes=schemes))


def _usage(record: GenerationRecord) -> Usage:
    return Usage(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,
    )


@dataclass
class TranslateEvents:
    """``{"delta"}`` events, then ``{"done", "finish_reason", "text", "usage"}``."""

    done_marker: bool = False
    pieces: list[str] = field(default_factory=list)

    def opening(self) -> Sequence[bytes]:
        return []

    def delta(self, delta: Delta) -> Sequence[bytes]:
        if not delta.text:
            return []
        self.pieces.append(delta.text)
        return [to_json(TranslateDelta(delta=delta.text))]

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        done = TranslateDone(
            finish_reason=record.finish_reason or "stop", text="".join(self.pieces), usage=_usage(record)
        )
        return [to_json(done)]


async def translate(request: web.Request) -> web.StreamResponse:
    """Translate ``text`` with the served model's prompt format, the glossary entries that occur in it and the
    previous passage as context; streamed as events (``stream: true``, the default) or one JSON answer. A client
    that goes away cancels the generation."""
    state = request.app[STATE]
    service = state.require_service()
    body = await read_body_as(request, state.body_limits(), lambda raw: parse(TranslateRequest, raw))
    limit = web_options(request).max_text_chars
    if len(body.text) > limit:
        raise invalid_request(
            f"the text is {len(body.text)} characters; /translate takes at most {limit} (translate it as a file job)",
            param="text",
            code="text_too_long",
        )
    sampling = sampling_for(body.preset, body.sampling)
    messages, prompt, _ = render_translation(service.model.prompt_format, body.text, body.glossary, body.context)
    wanted = body.sampling.max_tokens if body.sampling is not None else None
    max_tokens = wanted if wanted is not None else default_max_tokens(body.text)
    generation = await service.prepare(
        prompt,
        sampling.model_dump(exclude={"max_tokens"}),
        max_tokens=max_tokens,
        messages=messages,
        prompt_param="text",
        client=request.remote,
    )
    ticket = service.admit()
    if body.stream:
        return await run_as_events(request, ticket, generation, TranslateEvents(), service=service)
    done = await run_to_end(request, ticket, generation, service=service)
    return json_response(TranslateResponse(text=done.text, finish_reason=done.finish_reason, usage=_usage(done.record)))


TRANSLATE_ROUTES = [
    RouteSpec(
        "GET",
        "/translate/auth",
        auth_info,
        "Whether the API needs credentials, and which kinds (no credentials needed to ask).",
        response=AuthInfo,
        public=True,
        tags=("web",),
    ),
    RouteSpec(
        "GET",
        "/translate/info",
        translate_info,
        "The served model, its prompt format, slots, sampling presets, the file formats jobs read and the limits.",
        response=TranslateInfo,
        errors=MODEL_ERRORS,
        tags=("web",),
    ),
    RouteSpec(
        "POST",
        "/translate",
        translate,
        "Translate text with the served model's prompt format and a glossary (streamed unless stream is false).",
        request=TranslateRequest,
        response=TranslateResponse,
        stream_events=(TranslateDelta, TranslateDone),
        errors=GENERATION_ERRORS,
        tags=("web",),
    ),
]
