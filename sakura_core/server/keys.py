"""Typed keys for what the server keeps on the aiohttp application and on each request."""

from __future__ import annotations

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.state import ServerState

#: The shared server state.
STATE = web.AppKey("sakura_state", ServerState)
#: Paths that need no credentials.
PUBLIC_PATHS = web.AppKey("sakura_public_paths", frozenset)
#: Route patterns (a resource's canonical path, e.g. ``/v1/jobs/{id}``) that need no credentials.
PUBLIC_ROUTES = web.AppKey("sakura_public_routes", frozenset)
#: URL prefixes of static folders plugins serve (no credentials), with the headers each answer gets.
STATIC_HEADERS = web.AppKey("sakura_static_headers", tuple)
#: Pages for people that plugins serve (``ServerExtension.home``), for the banner.
HOMES = web.AppKey("sakura_homes", tuple)
#: The OpenAPI document, built once.
OPENAPI = web.AppKey("sakura_openapi", dict)
#: The generation a request ran, for the access log.
RECORD = web.RequestKey("sakura_record", GenerationRecord)
#: True when the request asked for a stream.
STREAMED = web.RequestKey("sakura_streamed", bool)
#: Why the server itself ended the request (e.g. "shutting down"), for the access log.
ENDED_BY_SERVER = web.RequestKey("sakura_ended_by_server", str)
