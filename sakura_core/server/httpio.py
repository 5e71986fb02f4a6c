"""Reading request bodies into pydantic models and writing pydantic models as JSON responses."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from aiohttp import web
from multidict import CIMultiDict
from pydantic import BaseModel, ValidationError

from sakura_core.server.errors import APIError, from_validation_error, invalid_request

ModelT = TypeVar("ModelT", bound=BaseModel)


def too_large(limit: int) -> APIError:
    """413 for a body over ``limit`` bytes."""
    return APIError(413, f"the request body is larger than {limit} bytes", code="request_too_large")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type says (some proxies forward text/plain)."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    if not raw.strip():
        raise invalid_request("the request body is empty; send a JSON object", code="invalid_json")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid_request(f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    return data


def parse(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate ``data`` as ``model``; 400 naming the fields at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def to_json(model: BaseModel) -> bytes:
    """The model as compact UTF-8 JSON."""
    return model.__pydantic_serializer__.to_json(model)


def json_response(model: BaseModel, *, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> web.Response:
    """A JSON response with ``model`` as the body."""
    return web.Response(
        body=to_json(model), status=status, content_type="application/json", headers=CIMultiDict(headers)
    )


def error_response(error: APIError) -> web.Response:
    """The OpenAI-shaped error body with the error's status and headers."""
    return json_response(error.body(), status=error.status, headers=error.headers)
