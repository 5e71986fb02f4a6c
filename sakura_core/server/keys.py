"""Typed keys for what the server keeps on the aiohttp application and on each request."""

from __future__ import annotations

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.state import ServerState

#: The shared server state.
STATE = web.AppKey("sakura_state", ServerState)
#: Paths that need no credentials.
PUBLIC_PATHS = web.AppKey("sakura_public_paths", frozenset)
#: The OpenAPI document, built once.
OPENAPI = web.AppKey("sakura_openapi", dict)
#: The generation a request ran, for the access log.
RECORD = web.RequestKey("sakura_record", GenerationRecord)
#: True when the request asked for a stream.
STREAMED = web.RequestKey("sakura_streamed", bool)
#: Why the server itself ended the request (e.g. "shutting down"), for the access log.
ENDED_BY_SERVER = web.RequestKey("sakura_ended_by_server", str)
