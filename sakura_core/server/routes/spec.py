"""The route table's entries: what each route reads and answers, for registration and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

#: Error statuses every generation route may answer.
GENERATION_ERRORS = (400, 401, 408, 413, 415, 500, 503)
#: Error statuses of a route that reads the loaded model.
MODEL_ERRORS = (401, 503)


@dataclass(frozen=True)
class RouteSpec:
    """One route: method, path, handler and the pydantic models of its bodies."""

    method: str
    path: str
    handler: Callable[[Any], Awaitable[Any]]
    summary: str
    #: The request body, when there is one: JSON unless ``request_media_type`` says otherwise (for
    #: ``multipart/form-data`` the model's fields are the parts; a ``bytes`` field is a file).
    request: type[BaseModel] | None = None
    request_media_type: str = "application/json"
    #: The status of the successful answer (201 for a route that creates something).
    status: int = 200
    #: The 200 answer (a JSON body unless ``media_type`` says otherwise).
    response: type[BaseModel] | None = None
    #: Each ``data:`` event when the client asks for ``stream: true`` (several models: any of them).
    stream_events: tuple[type[BaseModel], ...] = ()
    #: True when the stream ends with ``data: [DONE]``.
    stream_done: bool = False
    media_type: str = "application/json"
    #: Error statuses answered with the error body.
    errors: tuple[int, ...] = ()
    #: Other statuses with their own body model (e.g. /health's 503).
    other_responses: dict[int, type[BaseModel]] = field(default_factory=dict)
    #: True when no credentials are needed.
    public: bool = False
    #: True when the Sakura extras are also read from the URL query.
    sakura_query: bool = False
    tags: tuple[str, ...] = ()
