"""Reading ``POST /jobs``'s multipart body with limits: the file part never past ``--max-upload-bytes``, every
read bounded by the server's body timeouts, nothing parsed on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from sakura_core.server.http.errors import APIError, invalid_request
from sakura_core.server.settings import ServerSettings

#: Largest ``options`` part, in bytes.
MAX_OPTIONS_BYTES = 256 * 1024
#: What the multipart framing and the options part may add to the file's size.
ENVELOPE_BYTES = MAX_OPTIONS_BYTES + 64 * 1024
READ_SIZE = 64 * 1024
T = TypeVar("T")


@dataclass
class Upload:
    """The parts of a job's upload."""

    file_name: str | None
    data: bytes
    options: bytes | None


def too_large(limit: int) -> APIError:
    """413 for an upload over the limit (the connection is closed: the rest is not read)."""
    return APIError(
        413,
        f"the uploaded file is larger than {limit} bytes (--max-upload-bytes)",
        code="request_too_large",
        param="file",
        close_connection=True,
    )


def refuse_foreign_origin(request: web.Request, settings: ServerSettings) -> None:
    """403 for a browser upload from another site's page: a multipart form needs no CORS preflight, so without
    this a page elsewhere could queue jobs on a server without a key."""
    origin = request.headers.get("Origin")
    if origin is None or origin in settings.cors_origins:
        return
    if urlsplit(origin).netloc.lower() != request.host.lower():
        raise APIError(403, f"uploads from the page at {origin} are refused", code="cross_origin_upload")


async def read_upload(request: web.Request, max_bytes: int, settings: ServerSettings) -> Upload:
    """The ``file`` and ``options`` parts; 413 past ``max_bytes`` (before reading when Content-Length says
    so), 408 when the client stops sending, 400 for a body that is not multipart or has no file part."""
    refuse_foreign_origin(request, settings)
    if request.content_length is not None and request.content_length > max_bytes + ENVELOPE_BYTES:
        raise too_large(max_bytes)
    if not request.content_type.startswith("multipart/"):
        raise invalid_request(
            "POST /jobs takes multipart/form-data with a 'file' part (and optionally an 'options' part)",
            code="invalid_body",
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.body_deadline_seconds
    upload = Upload(None, b"", None)
    seen_file = False
    try:
        reader = await request.multipart()
        while True:
            part = await _timed(reader.next(), settings, deadline)
            if part is None:
                break
            if isinstance(part, MultipartReader):
                raise invalid_request("nested multipart bodies are not taken", code="invalid_body")
            if part.name == "file" and not seen_file:
                seen_file = True
                upload.file_name = part.filename
                upload.data = await _read_part(part, max_bytes, settings, deadline, too_large(max_bytes))
            elif part.name == "options" and upload.options is None:
                options_too_large = invalid_request(
                    f"the options part is larger than {MAX_OPTIONS_BYTES} bytes", param="options"
                )
                upload.options = await _read_part(part, MAX_OPTIONS_BYTES, settings, deadline, options_too_large)
            else:
                await _read_part(part, MAX_OPTIONS_BYTES, settings, deadline, invalid_request("unexpected part"))
    except (ValueError, AssertionError, HttpProcessingError, web.HTTPException) as exc:
        raise invalid_request(f"the multipart body is malformed: {exc}", code="invalid_body") from None
    if not seen_file:
        raise invalid_request("the upload has no 'file' part", param="file", code="missing_required_parameter")
    return upload


async def _read_part(
    part: BodyPartReader, limit: int, settings: ServerSettings, deadline: float, over: APIError
) -> bytes:
    data = bytearray()
    while True:
        chunk = await _timed(part.read_chunk(READ_SIZE), settings, deadline)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise over


async def _timed(awaitable: Awaitable[T], settings: ServerSettings, deadline: float) -> T:
    loop = asyncio.get_running_loop()
    wait = min(settings.body_timeout_seconds, deadline - loop.time())
    try:
        async with asyncio.timeout(max(wait, 0.0)):
            return await awaitable
    except TimeoutError:
        raise APIError(
            408, "the upload stopped arriving or took too long", code="request_timeout", close_connection=True
        ) from None
