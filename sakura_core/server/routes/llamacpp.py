"""llama-server's routes that Sakura clients lean on: /completion, /slots, /health, /metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from sakura_core.loaded_model import UNTIL_CONTEXT_FULL
from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.scheduler import Ticket
from sakura_core.server.generation.service import GenerationService
from sakura_core.server.generation.state import Phase
from sakura_core.server.http.errors import invalid_request, unavailable
from sakura_core.server.http.httpio import json_response, to_json
from sakura_core.server.keys import STATE
from sakura_core.server.routes.handler import Admitted, Plan, generation_handler
from sakura_core.server.routes.openai import single_prompt
from sakura_core.server.routes.schemas.llamacpp import (
    HealthResponse,
    LlamaCompletionChunk,
    LlamaCompletionRequest,
    LlamaCompletionResponse,
    LlamaTimings,
    SlotInfo,
    SlotList,
)
from sakura_core.server.routes.spec import GENERATION_ERRORS, MODEL_ERRORS, RouteSpec
from sakura_core.server.routes.streaming import Completed
from sakura_core.types import Delta, FinishReason

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def plan_completion(body: LlamaCompletionRequest, service: GenerationService) -> Plan:
    """llama-server's native completion: ``n_predict`` (or ``max_tokens``) tokens, -1 or none for as many as fit."""
    n_predict = body.n_predict if body.n_predict is not None else body.max_tokens
    if n_predict == 0:
        raise invalid_request("n_predict must be at least 1 (or -1: as many tokens as fit)", param="n_predict")
    max_tokens = n_predict if n_predict is not None and n_predict > 0 else UNTIL_CONTEXT_FULL
    return Plan(single_prompt(body.prompt), body.sampling_values(), max_tokens, body.stream)


def completion_events(body: LlamaCompletionRequest, admitted: Admitted) -> LlamaEvents:
    return LlamaEvents(admitted.model_id, admitted.ticket)


def completion_answer(body: LlamaCompletionRequest, admitted: Admitted, done: Completed) -> LlamaCompletionResponse:
    slot = admitted.ticket.slot or 0
    return final_answer(done.text, admitted.model_id, slot, done.finish_reason, done.record)


def final_answer(
    content: str, model: str, slot: int, finish_reason: FinishReason, record: GenerationRecord
) -> LlamaCompletionResponse:
    """The complete answer (or, with empty content, the last stream event) with llama-server's timings."""
    return LlamaCompletionResponse(
        content=content,
        model=model,
        id_slot=slot,
        tokens_predicted=record.completion_tokens,
        tokens_evaluated=record.prompt_tokens,
        stop_type="limit" if finish_reason == "length" else "eos",
        stopped_eos=finish_reason == "stop",
        stopped_limit=finish_reason == "length",
        timings=timings(record),
    )


def timings(record: GenerationRecord) -> LlamaTimings:
    """Prompt time: from the slot to the first token; predicted time: from the first token to the end."""
    started = record.started_at if record.started_at is not None else record.queued_at
    first = record.first_token_at if record.first_token_at is not None else started
    finished = record.finished_at if record.finished_at is not None else first
    prompt_ms = (first - started) * 1000
    predicted_ms = (finished - first) * 1000
    prompt_n = record.prompt_tokens - (record.cached_tokens or 0)
    predicted_n = record.completion_tokens
    return LlamaTimings(
        cache_n=record.cached_tokens,
        prompt_n=prompt_n,
        prompt_ms=prompt_ms,
        prompt_per_token_ms=prompt_ms / prompt_n if prompt_n else 0.0,
        prompt_per_second=prompt_n / prompt_ms * 1000 if prompt_ms > 0 else 0.0,
        predicted_n=predicted_n,
        predicted_ms=predicted_ms,
        predicted_per_token_ms=predicted_ms / predicted_n if predicted_n else 0.0,
        predicted_per_second=predicted_n / predicted_ms * 1000 if predicted_ms > 0 else 0.0,
    )


@dataclass
class LlamaEvents:
    """/completion stream events: ``{content, stop: false}`` per piece, then the full answer with ``stop: true``.

    llama-server sends no ``[DONE]`` on this route, so neither do we.
    """

    model: str
    ticket: Ticket
    done_marker: bool = False

    def opening(self) -> Sequence[bytes]:
        return []

    def delta(self, delta: Delta) -> Sequence[bytes]:
        if not delta.text:
            return []
        chunk = LlamaCompletionChunk(content=delta.text, id_slot=self.slot, tokens_predicted=delta.completion_tokens)
        return [to_json(chunk)]

    def closing(self, record: GenerationRecord) -> Sequence[bytes]:
        return [to_json(final_answer("", self.model, self.slot, record.finish_reason or "stop", record))]

    @property
    def slot(self) -> int:
        """The slot the generation runs in (known once the ticket is granted)."""
        return self.ticket.slot or 0


completion = generation_handler(
    LlamaCompletionRequest,
    plan_completion,
    completion_events,
    completion_answer,
    doc="llama-server's native completion: ``{content, model, stop, ...}``, or a stream of such objects.",
)


async def slots(request: web.Request) -> web.Response:
    """One entry per parallel sequence; AiNiee and LinguaGacha size their worker pools by the count."""
    state = request.app[STATE]
    service = state.require_service()
    engine = state.engine
    name = request.query.get("model")
    if name:  # several models: ?model= reports that one
        entry = state.served(name)
        if entry.service is None or entry.model is None:
            raise unavailable(f"the model {entry.id} is not loaded", code="model_not_loaded")
        service, engine = entry.service, entry.model.engine
    busy = service.scheduler.busy_slots()
    context = service.model_info.context_length
    caches = engine.slot_caches() or []
    entries = []
    for slot in range(service.scheduler.capacity):
        cache = caches[slot] if slot < len(caches) else None
        entries.append(
            SlotInfo(
                id=slot,
                state=1 if slot in busy else 0,
                is_processing=slot in busy,
                n_ctx=context,
                tokens_cached=None if cache is None else cache.tokens_cached,
                n_prompt_tokens_cache=None if cache is None else cache.prompt_tokens_cached,
            )
        )
    return json_response(SlotList(entries))


async def health(request: web.Request) -> web.Response:
    """200 once the model is loaded (also when every slot is busy); 503 while loading, shutting down, or while the
    engine reports that it cannot serve (with its reason)."""
    state = request.app[STATE]
    if state.phase is Phase.LOADING or state.scheduler is None:
        return json_response(HealthResponse(status="loading model"), status=503)
    if state.phase is Phase.STOPPING:
        return json_response(HealthResponse(status="shutting down"), status=503)
    model, scheduler = state.model, state.scheduler
    name = request.query.get("model")
    if name:  # several models: ?model= reports that one
        entry = state.served(name)
        if entry.failure is not None:
            return json_response(HealthResponse(status="engine unavailable", reason=entry.failure), status=503)
        if entry.model is None or entry.scheduler is None:
            return json_response(HealthResponse(status="loading model"), status=503)
        model, scheduler = entry.model, entry.scheduler
    problem = model.runner.problem if model is not None else None
    if problem is not None:
        return json_response(HealthResponse(status="engine unavailable", reason=problem), status=503)
    active = scheduler.active
    return json_response(HealthResponse(status="ok", slots_idle=scheduler.capacity - active, slots_processing=active))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: our metrics and llama-server's ``llamacpp:`` names."""
    state = request.app[STATE]
    gauges, engine_metrics = state.gauges(), state.engine.metrics()
    name = request.query.get("model")
    if name and state.models.default is not None:  # several models: ?model= reports that one's gauges
        entry = state.served(name)
        gauges = state.gauges(entry)
        engine_metrics = entry.model.engine.metrics() if entry.model is not None else ()
    text = state.metrics.render(gauges, engine_metrics)
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


ROUTES = [
    RouteSpec(
        "POST",
        "/completion",
        completion,
        "llama-server's native completion from a raw prompt.",
        request=LlamaCompletionRequest,
        response=LlamaCompletionResponse,
        stream_events=(LlamaCompletionChunk, LlamaCompletionResponse),
        errors=GENERATION_ERRORS,
        tags=("llama.cpp",),
    ),
    RouteSpec(
        "GET",
        "/slots",
        slots,
        "One entry per parallel sequence the engine serves.",
        response=SlotList,
        errors=(503,),
        public=True,
        tags=("llama.cpp",),
    ),
    RouteSpec(
        "GET",
        "/health",
        health,
        "200 once the model is loaded; 503 while loading, shutting down or while the engine cannot serve.",
        response=HealthResponse,
        other_responses={503: HealthResponse},
        public=True,
        tags=("llama.cpp",),
    ),
    RouteSpec(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics, including llama-server's llamacpp:* names.",
        media_type="text/plain",
        errors=MODEL_ERRORS[:1],
        tags=("llama.cpp",),
    ),
]
