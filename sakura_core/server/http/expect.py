"""The ``Expect`` header: ``100-continue`` answered as aiohttp does; any other expectation answered 417 in the JSON
error shape by the middleware pipeline (so it is logged and counted like every other request)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http import HttpVersion11

from sakura_core.server.http.errors import APIError

#: The expectation a request carried that the server does not meet (set by ``expect_handler``).
UNMET_EXPECTATION = web.RequestKey("sakura_unmet_expectation", str)


async def expect_handler(request: web.Request) -> None:
    """Each route's ``expect_handler``: send ``100 Continue`` for ``Expect: 100-continue``; remember anything else
    for ``refuse_unmet_expectation`` (raising here would bypass the middlewares: a text/plain 417, unlogged)."""
    expect = request.headers.get("Expect", "")
    if request.version != HttpVersion11:
        return
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started
    else:
        request[UNMET_EXPECTATION] = expect


def unmet_expectation(request: web.Request) -> APIError | None:
    """The 417 for a request whose expectation the server does not meet, or None."""
    expect = request.get(UNMET_EXPECTATION)
    if expect is None:
        return None
    shown = expect if len(expect) <= 60 else expect[:60] + "..."
    return APIError(
        417, f"the server meets no expectation but 100-continue (Expect: {shown!r})", code="expectation_failed"
    )
