"""The original Sakura server's own routes: model info, core version, and the legacy generate API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.http.httpio import json_response, to_json
from sakura_core.server.keys import STATE
from sakura_core.server.routes.handler import Admitted, Plan, generation_handler
from sakura_core.server.routes.schemas.sakura import (
    CoreVersionResponse,
    LegacyGenerateRequest,
    LegacyGenerateResponse,
    LegacyResult,
    ModelInfoResponse,
)
from sakura_core.server.routes.spec import GENERATION_ERRORS, MODEL_ERRORS, RouteSpec
from sakura_core.server.routes.streaming import Completed
from sakura_core.types import Delta


async def model_info(request: web.Request) -> web.Response:
    """``{model_name, model_version, model_quant, model_name_or_path}``."""
    info = request.app[STATE].require_model()
    return json_response(
        ModelInfoResponse(
            model_name=info.name, model_version=info.version, model_quant=info.quant, model_name_or_path=info.path
        )
    )


async def core_version(request: web.Request) -> web.Response:
    """``{name, version, quant}`` of the served model."""
    info = request.app[STATE].require_model()
    return json_response(CoreVersionResponse(name=info.name, version=info.version, quant=info.quant))


def plan_generate(body: LegacyGenerateRequest, service: GenerationService) -> Plan:
    """Legacy generate: a raw prompt → ``{results: [{text, new_token}]}``."""
    return Plan(body.prompt, body.sampling_values(), body.max_new_tokens, stream=False)


def plan_stream_generate(body: LegacyGenerateRequest, service: GenerationService) -> Plan:
    """Legacy streaming generate: server-sent events, each ``{results: [{text, new_token}]}`` for a new piece."""
    return Plan(body.prompt, body.sampling_values(), body.max_new_tokens, stream=True)


def generate_events(body: LegacyGenerateRequest, admitted: Admitted) -> LegacyEvents:
    return LegacyEvents()


def generate_answer(body: LegacyGenerateRequest, admitted: Admitted, done: Completed) -> LegacyGenerateResponse:
    return LegacyGenerateResponse(results=[LegacyResult(text=done.text, new_token=done.record.completion_tokens)])


@dataclass
class LegacyEvents:
    """One event per new piece of text; ``new_token`` counts the tokens it took (their sum is the total)."""

    done_marker: bool = False
    tokens_sent: int = 0

    def opening(self) -> Sequence[bytes]:
        return []

    def delta(self, delta: Delta) -> Sequence[bytes]:
        if not delta.text:
            return []
        new_tokens = delta.completion_tokens - self.tokens_sent
        self.tokens_sent = delta.completion_tokens
        return [to_json(LegacyGenerateResponse(results=[LegacyResult(text=delta.text, new_token=new_tokens)]))]

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        remaining = record.completion_tokens - self.tokens_sent
        if remaining <= 0:
            return []
        self.tokens_sent = record.completion_tokens
        return [to_json(LegacyGenerateResponse(results=[LegacyResult(text="", new_token=remaining)]))]


generate = generation_handler(
    LegacyGenerateRequest,
    plan_generate,
    generate_events,
    generate_answer,
    doc="Legacy generate: a raw prompt → ``{results: [{text, new_token}]}``.",
)
stream_generate = generation_handler(
    LegacyGenerateRequest,
    plan_stream_generate,
    generate_events,
    generate_answer,
    doc="Legacy streaming generate: server-sent events, each ``{results: [{text, new_token}]}`` for a new piece.",
)

ROUTES = [
    RouteSpec(
        "GET",
        "/v1/chat/model_info",
        model_info,
        "The original Sakura server's model identity.",
        response=ModelInfoResponse,
        errors=MODEL_ERRORS,
        tags=("sakura",),
    ),
    RouteSpec(
        "GET",
        "/api/core/version",
        core_version,
        "The served model's name, version and quantisation.",
        response=CoreVersionResponse,
        errors=MODEL_ERRORS,
        tags=("sakura",),
    ),
    RouteSpec(
        "POST",
        "/api/v1/generate",
        generate,
        "Legacy generate from a raw prompt.",
        request=LegacyGenerateRequest,
        response=LegacyGenerateResponse,
        errors=GENERATION_ERRORS,
        tags=("sakura",),
    ),
    RouteSpec(
        "POST",
        "/api/v1/stream/generate",
        stream_generate,
        "Legacy streaming generate: server-sent events of the same shape.",
        request=LegacyGenerateRequest,
        stream_events=(LegacyGenerateResponse,),
        media_type="text/event-stream",
        errors=GENERATION_ERRORS,
        tags=("sakura",),
    ),
]
