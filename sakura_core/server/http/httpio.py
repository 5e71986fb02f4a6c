"""Reading request bodies into pydantic models and writing pydantic models as JSON responses.

Bodies are read with a size limit and a timeout between reads; a compressed body is inflated off the event loop
and only up to the limit; JSON is parsed with a depth limit and must be valid Unicode (no lone surrogates). Every
way a body can be wrong is a 4xx with the error body.
"""

from __future__ import annotations

import asyncio
import gc
import json
import json.scanner
import re
import sys
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic_core
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from pydantic import BaseModel, ValidationError

from sakura_core.server.http.connections import GuardedRequestHandler
from sakura_core.server.http.errors import APIError, from_validation_error, invalid_request
from sakura_core.server.http.jsonout import to_json

__all__ = [
    "BodyLimits",
    "error_response",
    "json_response",
    "parse",
    "read_body_as",
    "read_json",
    "to_json",
    "too_large",
]

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")

#: zlib ``wbits`` per accepted Content-Encoding (gzip members, or a zlib stream for ``deflate``).
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: Bodies at most this long are inflated on the event loop (a thread hop costs more than inflating them).
INLINE_INFLATE_BYTES = 16 * 1024
#: Bodies at most this long are parsed (and validated) on the event loop; longer ones in ``BodyLimits.executor``.
INLINE_PARSE_BYTES = 64 * 1024
#: Commas and colons past which a large body is parsed by Python's own JSON scanner: far slower, but it lets the
#: event loop take the GIL between values, where the fast parser holds it for the whole body (700,000 tiny values:
#: 300 ms). A prompt that fits any context has a few thousand; only bodies built to be costly go the slow way.
FAST_PARSE_SEPARATORS = 20_000
#: The GIL switch interval while such a body is parsed, in seconds (Python's default is 0.005): the event loop
#: thread, which gives the GIL up at each socket call and at each wait for events, gets it back that much sooner.
PARSE_SWITCH_INTERVAL = 0.0005
#: A ``\uD800``-``\uDFFF`` escape: such bodies are left to the fast parser, which refuses lone surrogates.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class BodyLimits:
    """How much of a request body the server reads, and how long it waits for the client to send it."""

    max_bytes: int
    #: Longest wait between two reads of the body, in seconds.
    read_timeout: float
    #: Longest time the whole body may take to arrive, in seconds (None: no bound but ``read_timeout``).
    deadline: float | None = None
    #: Why the limit is what it is, added to the 413 message (e.g. the model's context).
    reason: str = ""
    #: Where bodies over ``INLINE_PARSE_BYTES`` are parsed (one thread: a flood of big bodies takes one core, and
    #: the event loop keeps its turn at the GIL); None: asyncio's default executor.
    executor: Executor | None = None


def too_large(limit: int, reason: str = "") -> APIError:
    """413 for a body over ``limit`` bytes."""
    because = f" ({reason})" if reason else ""
    return APIError(
        413, f"the request body is larger than {limit} bytes{because}", code="request_too_large", close_connection=True
    )


async def read_json(request: web.Request, limits: BodyLimits) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type says (some proxies forward text/plain)."""
    return await read_body_as(request, limits, lambda data: data)


#: Content types a browser page may POST to another origin without a CORS preflight (a "simple" request).
SIMPLE_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""})


def refuse_simple_cross_origin(request: web.Request) -> None:
    """415 for a body a browser page sent with a content type that needs no preflight: a foreign page could make
    a server on loopback (no key) generate for it. Only requests with an ``Origin`` (browsers) are refused; other
    clients may send JSON as text/plain, as some proxies do."""
    if "Origin" not in request.headers:
        return
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type in SIMPLE_CONTENT_TYPES:
        raise APIError(
            415,
            f"a browser request must send its JSON body as application/json, not {content_type or 'no type'!r}",
            code="unsupported_media_type",
        )


async def read_body_as(request: web.Request, limits: BodyLimits, build: Callable[[dict[str, Any]], T]) -> T:
    """``build`` of the body's JSON object (``read_json``'s rules). A body over ``INLINE_PARSE_BYTES`` is parsed,
    built and its parsed JSON freed off the event loop: a body of 700,000 tiny values costs the loop nothing.
    A browser's body in a content type that skips the CORS preflight is refused (``refuse_simple_cross_origin``)."""
    refuse_simple_cross_origin(request)
    raw = await _inflated_body(request, limits)
    if len(raw) <= INLINE_PARSE_BYTES:
        return build(parse_json_object(raw))
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(limits.executor, _parse_and_build, raw, build)


def _parse_and_build(raw: bytes, build: Callable[[dict[str, Any]], T]) -> T:
    """Off the loop: parse (the slow, GIL-sharing way for bodies of very many values), then build. The parsed
    object is freed here too, in the same thread, also when the body is refused: the error that goes back to the
    loop keeps no reference to it (freeing 700,000 values takes milliseconds, with the GIL held)."""
    try:
        separators = raw.count(b",") + raw.count(b":")
        if separators > FAST_PARSE_SEPARATORS and SURROGATE_ESCAPE.search(raw) is None:
            with _short_switch_interval:
                return build(parse_json_object_yielding(raw))
        return build(parse_json_object(raw))
    except APIError as exc:
        exc.__context__ = exc.__cause__ = None  # a validation error holds the values it refused
        raise exc.with_traceback(None) from None  # the frames of the parse and the build hold the parsed body


class _SwitchInterval:
    """Lowers the GIL switch interval while at least one many-valued body is being parsed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, PARSE_SWITCH_INTERVAL))
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setswitchinterval(self._saved)


_short_switch_interval = _SwitchInterval()


def parse_json_object_yielding(raw: bytes) -> dict[str, Any]:
    """``parse_json_object`` with Python's JSON scanner, which gives other threads the GIL as it goes; for bodies
    without surrogate escapes (the one rule it would not check)."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, value in pairs:  # a Python loop, not one C call that holds the GIL for the whole object
            built[key] = value
        return built

    decoder = json.JSONDecoder(parse_constant=refuse_constant, object_pairs_hook=build_object)
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    collecting = gc.isenabled()
    gc.disable()  # a collection among hundreds of thousands of new objects holds the GIL for tens of milliseconds
    try:
        data = decoder.decode(raw.decode("utf-8"))
    except RecursionError:
        raise invalid_request("the request body is not valid JSON (nested too deeply)", code="invalid_json") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise invalid_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(data, dict):
        raise invalid_request(f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    return data


async def _inflated_body(request: web.Request, limits: BodyLimits) -> bytes:
    """The raw body, inflated when its Content-Encoding says so."""
    raw = await _read_body(request, limits)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    # under a plain aiohttp site (an embedding application, some tests) aiohttp has inflated the body already
    inflated = not isinstance(request.protocol, GuardedRequestHandler)
    if encoding not in ("", "identity") and not inflated:
        if encoding not in DECODERS:
            raise APIError(
                415,
                f"Content-Encoding {encoding!r} is not supported; send the body as it is, or with gzip or deflate",
                code="unsupported_content_encoding",
            )
        if len(raw) <= INLINE_INFLATE_BYTES:
            raw = inflate(raw, DECODERS[encoding], limits.max_bytes, encoding)
        else:
            raw = await asyncio.to_thread(inflate, raw, DECODERS[encoding], limits.max_bytes, encoding)
    return raw


async def _read_body(request: web.Request, limits: BodyLimits) -> bytes:
    """The raw body: 413 past ``limits.max_bytes`` (before reading when Content-Length says so), 408 when the
    client stops sending for ``limits.read_timeout`` seconds or the whole body takes longer than
    ``limits.deadline``, 400 for a malformed chunked body."""
    limit = limits.max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, limits.reason)
    loop = asyncio.get_running_loop()
    deadline = None if limits.deadline is None else loop.time() + limits.deadline
    chunks: list[bytes] = []
    size = 0
    while True:
        wait = limits.read_timeout
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                chunk = await request.content.readany()
        except TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                message = f"the request body did not arrive within {limits.deadline:g} seconds"
            else:
                message = f"the request body stopped arriving: nothing came for {limits.read_timeout:g} seconds"
            raise APIError(408, message, code="request_timeout", close_connection=True) from None
        except (web.RequestPayloadError, HttpProcessingError) as exc:
            raise invalid_request(f"the request body is malformed: {exc}", code="invalid_body") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large(limit, limits.reason)
        chunks.append(chunk)


def inflate(raw: bytes, wbits: int, limit: int, encoding: str) -> bytes:
    """``raw`` decompressed, at most ``limit`` bytes of output (413 past it, however small ``raw`` is).

    Several gzip members one after another are one body (RFC 1952). A ``deflate`` body that is not a zlib stream
    is read as raw deflate, as browsers and aiohttp do.
    """
    out: list[bytes] = []
    size = 0
    data = raw
    decoder = zlib.decompressobj(wbits)
    try:
        while True:
            piece = decoder.decompress(data, limit + 1 - size)
            size += len(piece)
            if size > limit:
                raise APIError(
                    413,
                    f"the request body inflates to more than {limit} bytes",
                    code="request_too_large",
                    close_connection=True,
                )
            out.append(piece)
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif decoder.eof and decoder.unused_data and wbits > zlib.MAX_WBITS:
                data = decoder.unused_data  # the next gzip member
                decoder = zlib.decompressobj(wbits)
            else:
                break
    except zlib.error as exc:
        if encoding == "deflate" and wbits == zlib.MAX_WBITS and size == 0:
            return inflate(raw, -zlib.MAX_WBITS, limit, encoding)
        raise invalid_request(
            f"the request body is not valid {encoding} data ({exc}); send it uncompressed or fix Content-Encoding",
            code="invalid_body",
        ) from None
    if not decoder.eof:
        raise invalid_request(f"the request body ends in the middle of its {encoding} data", code="invalid_body")
    return b"".join(out)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object: valid UTF-8 JSON, valid Unicode strings, nested at most 200 levels."""
    if not raw.strip():
        raise invalid_request("the request body is empty; send a JSON object", code="invalid_json")
    try:
        # caching only the keys: a body of many distinct strings (100,000 stop strings) parses 3-4 times faster
        data = pydantic_core.from_json(raw, allow_inf_nan=False, cache_strings="keys")
    except ValueError as exc:
        raise invalid_request(
            f"the request body is not valid JSON: {exc}{_hint(str(exc))}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise invalid_request(f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    return data


def _hint(problem: str) -> str:
    if "recursion limit" in problem:
        return " (nested too deeply)"
    if "surrogate" in problem or "hex escape" in problem or "unicode code point" in problem:
        return " (strings must be valid Unicode: a \\ud800-\\udfff escape only as half of a surrogate pair)"
    return ""


def parse(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate ``data`` as ``model``; 400 naming the fields at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def json_response(model: BaseModel, *, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> web.Response:
    """A JSON response with ``model`` as the body."""
    return web.Response(
        body=to_json(model), status=status, content_type="application/json", headers=CIMultiDict(headers)
    )


def error_response(error: APIError) -> web.Response:
    """The OpenAI-shaped error body with the error's status and headers."""
    response = json_response(error.body(), status=error.status, headers=error.headers)
    if error.close_connection:
        response.force_close()
    return response
