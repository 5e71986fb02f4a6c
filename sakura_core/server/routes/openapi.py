"""The OpenAPI 3.1 document, generated from the route table and the pydantic models, so they cannot drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from sakura_core.server.routes.sampling import SAKURA_EXTRAS
from sakura_core.server.routes.schemas.common import ErrorResponse
from sakura_core.server.routes.spec import RouteSpec

REF_TEMPLATE = "#/components/schemas/{model}"
#: Key under a text/event-stream media type holding the schema of each ``data:`` event.
EVENT_SCHEMA_KEY = "x-sse-data"
#: Key under a text/event-stream media type: true when the stream ends with ``data: [DONE]``.
DONE_MARKER_KEY = "x-sse-done-marker"

#: The ``data`` of the end marker event.
DONE_DATA = "[DONE]"

_STATUS_TEXT = {
    400: "Invalid request (malformed JSON, wrong types, bad messages, prompt longer than the context).",
    401: "Missing or wrong credentials (only when the server requires auth).",
    404: "No such route, or no served model by that name (the load and unload routes).",
    409: "The model is serving requests (unload it when idle).",
    408: "The request body stopped arriving (see --body-timeout).",
    413: "The request body is over the size limit (8 MiB, or less when the model's context could not hold it).",
    415: "The body's Content-Encoding is not gzip, deflate or identity.",
    500: "The engine or the server failed; the message says how.",
    503: "The model is loading, the queue is full (see Retry-After) or the server is shutting down.",
}


def build_openapi(routes: Sequence[RouteSpec], *, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for ``routes``: paths, request/response/event schemas, error answers."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorResponse, "serialization"): None}
    for spec in routes:
        if spec.request is not None:
            wanted[(spec.request, "validation")] = None
        for model in (spec.response, *spec.stream_events, *spec.other_responses.values()):
            if model is not None:
                wanted[(model, "serialization")] = None
    refs, definitions = models_json_schema(list(wanted), ref_template=REF_TEMPLATE)

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sakura: the Sakura API",
            "version": version,
            "description": (
                "OpenAI-compatible, llama-server-compatible and original Sakura routes in front of one Sakura "
                "translation model. Credentials are needed only when the server was started with auth (see "
                "docs/api.md); /health, /slots, /openapi.json and CORS preflights never need them."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


def _operation(spec: RouteSpec, ref: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": f"{spec.method.lower()}{spec.path.replace('/', '_').replace('.', '_')}",
        "tags": list(spec.tags),
        "responses": {},
    }
    if spec.handler.__doc__:
        operation["description"] = " ".join(spec.handler.__doc__.split())
    if spec.public:
        operation["security"] = []
    else:
        operation["security"] = [{}, {"bearer": []}, {"basic": []}]
    if spec.request is not None:
        json_body = spec.request_media_type == "application/json"
        operation["requestBody"] = {
            "required": True,
            "description": "JSON, whatever the Content-Type says; unknown fields are ignored."
            if json_body
            else f"{spec.request_media_type}, one part per field.",
            "content": {spec.request_media_type: {"schema": ref(spec.request, "validation")}},
        }
    if spec.sakura_query:
        operation["parameters"] = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": "Sakura extra, used when the body does not set it.",
                "schema": {"type": "string"},
            }
            for name in SAKURA_EXTRAS
        ]
    ok: dict[str, Any] = {}
    if spec.response is not None:
        ok[spec.media_type] = {"schema": ref(spec.response)}
    elif spec.media_type != "text/event-stream":
        ok[spec.media_type] = {"schema": {"type": "string"} if spec.media_type.startswith("text/") else {}}
    if spec.stream_events:
        events = [ref(model) for model in spec.stream_events]
        payload = events[0] if len(events) == 1 else {"anyOf": events}
        ok["text/event-stream"] = {
            "schema": event_schema(payload, ref(ErrorResponse), done_marker=spec.stream_done),
            EVENT_SCHEMA_KEY: payload,
            DONE_MARKER_KEY: spec.stream_done,
        }
    operation["responses"][str(spec.status)] = {"description": _ok_text(spec), "content": ok}
    for status, model in spec.other_responses.items():
        operation["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "See the body."),
            "content": {"application/json": {"schema": ref(model)}},
        }
    for status in spec.errors:
        operation["responses"].setdefault(
            str(status),
            {"description": _STATUS_TEXT[status], "content": {"application/json": {"schema": ref(ErrorResponse)}}},
        )
    return operation


def event_schema(payload: dict[str, Any], error: dict[str, Any], *, done_marker: bool) -> dict[str, Any]:
    """The schema of one server-sent event of a stream, as OpenAPI tools before 3.2 read a stream's ``schema``:
    an object whose ``data`` is the JSON of ``payload`` or of an error (a stream the server ends itself), or, on
    routes that use it, the end marker ``[DONE]``. ``: ping`` comments are not events."""
    json_data = {"contentMediaType": "application/json", "contentSchema": {"anyOf": [payload, error]}}
    data: dict[str, Any] = {"type": "string", **json_data}
    if done_marker:
        data = {"type": "string", "if": {"const": DONE_DATA}, "else": json_data}
    return {
        "type": "object",
        "description": "One server-sent event: a data: line holding JSON"
        + (", or data: [DONE] at the end." if done_marker else "."),
        "properties": {
            "data": data,
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
        "required": ["data"],
    }


def _ok_text(spec: RouteSpec) -> str:
    kind: Literal["stream", "json", "text"] = (
        "stream" if spec.stream_events and spec.response is None else "text" if spec.response is None else "json"
    )
    if kind == "stream":
        return "Server-sent events; each data: event matches x-sse-data (or is an error, or [DONE])."
    if spec.stream_events:
        return "JSON; with stream: true, server-sent events whose data: events match x-sse-data (or are errors)."
    return "OK"
