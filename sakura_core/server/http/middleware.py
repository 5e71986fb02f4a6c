"""The request pipeline around every route: access log, error bodies, CORS, auth."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from sakura_core.server.generation.metrics import GenerationRecord
from sakura_core.server.generation.state import Phase
from sakura_core.server.http import cors
from sakura_core.server.http.connections import SERVER_NAME, GuardedRequestHandler
from sakura_core.server.http.errors import APIError, server_error
from sakura_core.server.http.expect import unmet_expectation
from sakura_core.server.http.httpio import error_response
from sakura_core.server.http.logtext import escape_for_log
from sakura_core.server.keys import (
    ENDED_BY_SERVER,
    PUBLIC_PATHS,
    PUBLIC_ROUTES,
    RECORD,
    STATE,
    STATIC_HEADERS,
    STREAMED,
)

logger = logging.getLogger("sakura_core.server.access")
error_logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Status logged for a request whose client went away before the answer.
CLIENT_CLOSED = 499
#: Why the server ended a request itself at shutdown (logged with the request).
SHUTTING_DOWN = "shutting down"


def route_name(request: web.Request) -> str:
    """The matched route's path pattern (bounded label values for metrics), or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line and one metrics count per request: route, status, tokens, time, tokens/s."""
    started = time.perf_counter()
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.request_started()  # the headers are in: the header timeout no longer applies
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        if request.app[STATE].phase is Phase.STOPPING and ENDED_BY_SERVER not in request:
            # the shutdown closed it (a body still arriving, an answer not yet written), not the client
            request[ENDED_BY_SERVER] = SHUTTING_DOWN
            status = 503
        raise
    finally:
        record = request.get(RECORD)
        if record is not None and record.outcome == "cancelled" and ENDED_BY_SERVER not in request:
            status = CLIENT_CLOSED if status == 200 else status
        elif status == CLIENT_CLOSED and ENDED_BY_SERVER in request and request.get(STREAMED):
            status = 200  # the stream was answered; the server ended it (the log line says why)
        metrics = request.app[STATE].metrics
        metrics.count_request(route_name(request), status)
        metrics.count_result(route_name(request), *request_result(request, status, record))
        if request.method != "OPTIONS" or logger.isEnabledFor(logging.DEBUG):
            logger.info("%s", describe_request(request, status, time.perf_counter() - started, record))


def request_result(request: web.Request, status: int, record: GenerationRecord | None) -> tuple[str, str]:
    """How a request ended, for the metrics: ``finished``, ``cancelled``, ``failed`` or ``refused``, and why."""
    ended = request.get(ENDED_BY_SERVER)
    if ended is not None:
        return "cancelled", "send_timeout" if ended.startswith("send timeout") else "shutting_down"
    if status == CLIENT_CLOSED:
        return "cancelled", "client_closed"
    if status < 400:
        if record is not None and record.outcome == "error":
            return "failed", "engine_error"
        return "finished", record.outcome if record is not None else "ok"
    if status < 500 or status == 503:
        return "refused", str(status)
    return "failed", str(status)


def describe_request(request: web.Request, status: int, seconds: float, record: GenerationRecord | None) -> str:
    """``POST /v1/chat/completions 200 stream prompt=57 completion=24 length 0.42s 57.1 tok/s``.

    The path is the client's text: control characters in it are escaped, so it cannot forge log lines.
    """
    parts = [request.method, escape_for_log(request.path), str(status)]
    if request.get(STREAMED):
        parts.append("stream")
    if record is not None:
        parts += [f"prompt={record.prompt_tokens}", f"completion={record.completion_tokens}", record.outcome]
        if record.started_at is not None and record.started_at - record.queued_at >= 0.01:
            parts.append(f"queued {record.started_at - record.queued_at:.2f}s")
    parts.append(f"{seconds:.3f}s")
    if record is not None and record.started_at is not None and record.completion_tokens:
        generating = (record.finished_at or time.perf_counter()) - record.started_at
        if generating > 0:
            parts.append(f"{record.completion_tokens / generating:.1f} tok/s")
    ended = request.get(ENDED_BY_SERVER)
    if ended is not None:
        parts.append(f"ended by the server: {ended}")
    return " ".join(parts)


@web.middleware
async def error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {...}}`` with its status; the server keeps serving."""
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(request, exc))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        error_logger.exception("internal error on %s %s", request.method, escape_for_log(request.path))
        return error_response(server_error(f"internal server error: {type(exc).__name__}: {exc}"))


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> APIError:
    path = escape_for_log(request.path)
    if exc.status == 404:
        return APIError(404, f"no route {request.method} {path}; see GET /openapi.json", code="not_found")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return APIError(
            405,
            f"{request.method} is not allowed on {path} (allowed: {allowed})",
            code="method_not_allowed",
            headers=[("Allow", allowed)] if allowed else [],
        )
    return APIError(exc.status, exc.reason, code=exc.reason.lower().replace(" ", "_"))


@web.middleware
async def refuse_unmet_expectation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """417 for an ``Expect`` value other than ``100-continue``, in the JSON error shape."""
    error = unmet_expectation(request)
    if error is not None:
        raise error
    return await handler(request)


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``OPTIONS`` on any path is a CORS preflight, answered without auth."""
    if request.method == "OPTIONS":
        origins = request.app[STATE].settings.cors_origins
        return web.Response(status=204, headers=cors.preflight_headers(request.headers, origins))
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 with ``WWW-Authenticate`` unless the policy allows the request (public routes need nothing)."""
    policy = request.app[STATE].auth
    if policy.required and not _is_public(request):
        if not policy.allows(request.headers.get("Authorization")):
            raise APIError(
                401,
                "missing or wrong credentials: send Authorization: Bearer <api key> (or HTTP Basic)",
                type="authentication_error",
                code="invalid_api_key",
                headers=[("WWW-Authenticate", value) for value in policy.challenges()],
            )
    return await handler(request)


def _is_public(request: web.Request) -> bool:
    """True for a public route (by path, or by the pattern a plugin's route was added with) or a static file."""
    if request.path in request.app[PUBLIC_PATHS]:
        return True
    resource = request.match_info.route.resource
    if resource is not None and resource.canonical in request.app[PUBLIC_ROUTES]:
        return True
    return request.method in ("GET", "HEAD") and any(
        request.path.startswith(prefix) for prefix, _ in request.app[STATIC_HEADERS]
    )


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, streams and errors included, carries the CORS headers, and a
    ``Server`` header that names no library version; a plugin's static files get the headers it asked for."""
    response.headers["Server"] = SERVER_NAME
    for prefix, headers in request.app[STATIC_HEADERS]:
        if request.path.startswith(prefix):
            for name, value in headers:
                response.headers.setdefault(name, value)
    for name, value in cors.response_headers(request.headers, request.app[STATE].settings.cors_origins).items():
        response.headers.setdefault(name, value)


MIDDLEWARES = (access_log, error_bodies, refuse_unmet_expectation, cors_preflight, authenticate)
