"""Client connections: timeouts for slow and idle clients, a cap on open connections, and aiohttp's own protocol
errors answered in the JSON error shape.

``GuardedSite`` listens for a runner. Each accepted connection gets a ``GuardedRequestHandler`` (aiohttp's
protocol with a header timeout and JSON protocol errors), or, past ``--max-connections``, a fixed 503 and a close,
before any parsing. aiohttp's keep-alive timer closes idle connections between requests; the request body's read
timeout is ``sakura_core.server.http.httpio``'s.

What aiohttp decides itself and cannot be changed here: the status of a malformed request (always 400), closing
the connection after it, and connections it closes without an answer (a client that disconnects, data after an
answer that closed the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong

from sakura_core.server.banner import url_host
from sakura_core.server.http.errors import APIError, server_error, unavailable
from sakura_core.server.http.jsonout import to_json
from sakura_core.server.http.logtext import escape_for_log
from sakura_core.server.settings import ServerSettings

logger = logging.getLogger(__name__)

if sys.platform != "win32":
    import resource

#: Open files kept free for the server's own use (model files, threads, logs) when the connection cap is lowered
#: to fit the open-file limit; the listen backlog is kept free too, since asyncio accepts up to that many
#: connections at once before the cap can refuse any of them.
RESERVED_FILES = 64
#: Connections the kernel queues before the server accepts them.
LISTEN_BACKLOG = 128
#: Seconds between two log lines about the same connection trouble (refusals, failing accept()).
TROUBLE_LOG_SECONDS = 10.0
#: The message asyncio gives its exception handler when accept() fails for lack of file descriptors or memory.
ACCEPT_FAILED = "socket.accept() out of system resource"
#: The ``Server`` header of every answer: the software, not its libraries' versions.
SERVER_NAME = "sakura"
#: Longest client text quoted in a protocol error.
QUOTED_CHARS = 120
#: aiohttp's own parser limits, set here rather than left to its defaults: the request line and each header field
#: (bytes), and how many header fields one request may have. Real clients send a dozen headers of a few dozen bytes.
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADER_FIELDS = 100
#: How a request's header block ends (a bare LF is tolerated by some parsers, so it ends the count too).
HEADER_ENDS = (b"\r\n\r\n", b"\n\n")


def canned_response(error: APIError) -> bytes:
    """A complete HTTP/1.1 answer carrying ``error``, closing the connection (sent without aiohttp)."""
    body = to_json(error.body())
    head = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in error.headers),
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(head).encode("ascii") + body


REQUEST_TIMEOUT = canned_response(
    APIError(408, "the request headers did not arrive in time", code="request_timeout", close_connection=True)
)


def headers_too_large(limit: int) -> bytes:
    """The 431 sent (then the connection closed) when a request's header block passes ``limit`` bytes."""
    return canned_response(
        APIError(
            431,
            f"the request headers are larger than {limit} bytes (--max-header-size)",
            code="request_header_too_large",
            close_connection=True,
        )
    )


TOO_MANY_CONNECTIONS = canned_response(
    unavailable("the server has too many open connections; retry shortly", code="too_many_connections", retry_after=1)
)
TOO_MANY_FROM_CLIENT = canned_response(
    unavailable(
        "this address has too many open connections to the server; close some or retry shortly",
        code="too_many_connections",
        retry_after=1,
    )
)


class Trouble:
    """Logs a recurring problem once per ``interval`` seconds, with how often it happened meanwhile."""

    def __init__(self, message: str, interval: float = TROUBLE_LOG_SECONDS) -> None:
        self.message = message
        self.interval = interval
        self.unreported = 0
        self._last = -interval

    def happened(self, detail: str = "") -> None:
        """Count one occurrence; log when the last line is ``interval`` seconds old."""
        self.unreported += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        times = f" ({self.unreported} times in the last {self.interval:.0f}s)" if self._last >= 0 else ""
        logger.warning("%s%s%s", self.message, f": {detail}" if detail else "", times)
        self._last = now
        self.unreported = 0


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol with a header timeout and protocol errors in the JSON error shape.

    A connection must send a complete request header within ``header_timeout`` seconds of its start, or of the
    first byte of a later request; past it the connection is closed, after a 408 when part of a request came.
    A request's header block may be at most ``max_header_bytes`` long: past it the connection gets a 431 and is
    closed before the parser buffers more (``on_oversized`` is told), so the memory a connection can hold before
    authentication is bounded.
    Between requests aiohttp's keep-alive timer applies. While a request is handled (streams included) no timer
    runs here. The server's access-log middleware calls ``request_started`` once the headers are in.
    """

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        header_timeout: float,
        max_header_bytes: int = 32 * 1024,
        on_close: Any = None,
        on_oversized: Any = None,
        admit: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_line_size", MAX_LINE_BYTES)
        kwargs.setdefault("max_field_size", MAX_FIELD_BYTES)
        kwargs.setdefault("max_headers", MAX_HEADER_FIELDS)
        super().__init__(manager, loop=loop, **kwargs)
        self._header_timeout = header_timeout
        self._max_header_bytes = max_header_bytes
        self._on_oversized = on_oversized
        self._admit = admit
        #: Bytes of the current request's header block seen so far; None once its end was seen.
        self._header_bytes: int | None = 0
        #: The last bytes of the previous chunk (a header end may straddle two chunks).
        self._header_tail = b""
        self._header_timer: asyncio.TimerHandle | None = None
        self._on_close = on_close
        #: No request is being handled: the connection is new or between requests.
        self._between_requests = True
        #: Bytes of the next request have arrived.
        self._request_begun = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._admit is not None and not self._admit(transport.get_extra_info("peername")):
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_FROM_CLIENT)  # refused before anything is parsed
            self._header_bytes = None
            self.force_close()
            return
        self.keep_alive(True)  # a new connection is under the header timeout, not aiohttp's keep-alive timer
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_bytes is not None and self._count_header(data):
            return
        super().data_received(data)
        if data and self._between_requests and not self._request_begun and self.transport is not None:
            self._request_begun = True
            self.keep_alive(True)  # stops the keep-alive timer: the header timeout applies from here
            if self._header_timer is None:
                self._arm_header_timer()

    def _count_header(self, data: bytes) -> bool:
        """Count ``data`` toward the current request's header block; True when it passed the limit (answered)."""
        assert self._header_bytes is not None
        seen = self._header_tail + data
        ends = [found + len(end) for end in HEADER_ENDS if (found := seen.find(end)) >= 0]
        if ends:
            self._header_bytes += min(ends) - len(self._header_tail)
        else:
            self._header_bytes += len(data)
        if self._header_bytes > self._max_header_bytes:
            if self.transport is not None:
                self.transport.write(headers_too_large(self._max_header_bytes))
            if self._on_oversized is not None:
                self._on_oversized()
            self._header_bytes = None
            self.force_close()
            return True
        if ends:
            self._header_bytes = None
            self._header_tail = b""
        else:
            self._header_tail = seen[-3:]
        return False

    def request_started(self) -> None:
        """The request's headers are complete and its handler runs: no timer applies until it is answered."""
        self._between_requests = False
        self._request_begun = False
        self._cancel_header_timer()

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        super().log_access(request, response, time)
        self._between_requests = True  # answered: aiohttp's keep-alive timer takes over
        if response.keep_alive is not False:  # the next request's header block is counted afresh
            self._header_bytes, self._header_tail = 0, b""
        if response.status == 408:
            # the client stopped sending its body: close now rather than wait for the rest of it (aiohttp would
            # linger, reading, for up to 10 seconds)
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (or a handler that failed): the JSON error body."""
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; no error body can follow")
        error = protocol_error(status, exc)
        if error.status >= 500:
            self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
        else:
            logger.info("%s from %s", escape_for_log(error.message), request.remote)
        response = web.Response(status=error.status, body=to_json(error.body()), content_type="application/json")
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = asyncio.get_running_loop().call_later(self._header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._between_requests or self.transport is None:
            return
        if self._request_begun:
            self.transport.write(REQUEST_TIMEOUT)
        logger.debug("closed a connection that sent no complete request header in %gs", self._header_timeout)
        self.force_close()


def protocol_error(status: int, exc: BaseException | None) -> APIError:
    """The error body for what aiohttp's parser (or a failing handler) reported, with aiohttp's status."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "the limit of"
        return APIError(
            status, f"the request line or a header is longer than {limit} bytes", code="request_header_too_large"
        )
    if isinstance(exc, HttpProcessingError) and "too many headers" in str(exc.message).lower():
        return APIError(
            431, f"the request has more than {MAX_HEADER_FIELDS} header fields", code="request_header_too_large"
        )
    if isinstance(exc, BadHttpMethod):
        return APIError(status, f"not an HTTP request: {_quote(exc.message)}", code="invalid_http")
    if isinstance(exc, HttpProcessingError):
        return APIError(status, f"the request is not valid HTTP: {_quote(exc.message)}", code="invalid_http")
    if status >= 500:
        return server_error("internal server error")
    return APIError(status, "the request could not be handled", code="bad_request")


def _quote(text: str) -> str:
    return text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "..."


class RefusedConnection(asyncio.Protocol):
    """A connection past the cap: a fixed 503 and a close, nothing parsed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(TOO_MANY_CONNECTIONS)
        transport.close()


def client_of(peername: Any) -> str:
    """The client address a connection counts against (its IP address; the whole peername when it has none)."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername)


class ConnectionGuard:
    """The protocol factory of the listening socket: counts open connections and refuses past ``cap``, and past
    ``per_client`` connections from one address."""

    def __init__(self, server: web.Server, settings: ServerSettings, cap: int) -> None:
        self.server = server
        self.settings = settings
        self.cap = cap
        self.per_client = min(settings.max_connections_per_client, cap)
        self.open = 0
        #: Open connections per client address (only addresses with at least one).
        self.by_client: dict[str, int] = {}
        self.client_refusals = Trouble(
            f"refusing new connections from an address that holds {self.per_client} already"
            " (--max-connections-per-client)"
        )
        self.refusals = Trouble(
            f"refusing new connections: {cap} are open, the most this server takes (--max-connections)"
        )
        self.oversized = Trouble(
            f"refused request headers larger than {settings.max_header_bytes} bytes (--max-header-size) with a 431"
        )

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.cap:
            self.refusals.happened()
            return RefusedConnection()
        self.open += 1
        client: list[str] = []  # the address this connection counts against, once known

        def admit(peername: Any) -> bool:
            address = client_of(peername)
            held = self.by_client.get(address, 0)
            if held >= self.per_client:
                self.client_refusals.happened(address)
                return False
            self.by_client[address] = held + 1
            client.append(address)
            return True

        def closed() -> None:
            self.open -= 1
            if client:
                left = self.by_client[client[0]] - 1
                if left:
                    self.by_client[client[0]] = left
                else:
                    del self.by_client[client[0]]

        return GuardedRequestHandler(
            self.server,
            loop=asyncio.get_running_loop(),
            header_timeout=self.settings.header_timeout_seconds,
            max_header_bytes=self.settings.max_header_bytes,
            on_close=closed,
            on_oversized=self.oversized.happened,
            admit=admit,
            keepalive_timeout=self.settings.keepalive_timeout_seconds,
            access_log=None,
            auto_decompress=False,  # bodies are inflated off the event loop, up to the size limit (httpio)
        )


class AcceptErrors:
    """The event loop's exception handler while serving: a failing ``accept()`` is logged once per interval.

    asyncio reports every failed accept (out of file descriptors) with a traceback, up to the listen backlog each
    time the socket is readable; at the open-file limit that is thousands of lines a second. Other reports go to
    the handler that was installed before. One loop holds one: a second server on the same loop shares it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = TROUBLE_LOG_SECONDS) -> None:
        self.loop = loop
        self.previous = loop.get_exception_handler()
        self.trouble = Trouble("cannot accept connections", interval)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_FAILED:
            self.trouble.happened(f"{context.get('exception')} (open-file limit {open_file_limit()}; see `ulimit -n`)")
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def install(self) -> None:
        """Become the loop's exception handler, unless another AcceptErrors already is."""
        if not isinstance(self.previous, AcceptErrors):
            self.loop.set_exception_handler(self)

    def remove(self) -> None:
        """Put the previous handler back (when this one is still the loop's)."""
        if self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self.previous)


def open_file_limit() -> int | None:
    """This process's soft open-file limit (None where there is none to read: Windows, or unlimited)."""
    if sys.platform == "win32":
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> None:
    """Raise this process's soft open-file limit to the hard one (as nginx's worker_rlimit_nofile does). Nothing to
    do on Windows."""
    if sys.platform == "win32":
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            logger.debug("open-file limit raised from %d to %d", soft, hard)


def connection_cap(wanted: int, backlog: int = LISTEN_BACKLOG) -> int:
    """``wanted``, lowered so that open connections cannot exhaust the open-file limit."""
    soft = open_file_limit()
    if soft is None:
        return wanted
    fits = max(1, soft - RESERVED_FILES - backlog)
    if wanted > fits:
        logger.warning(
            "--max-connections %d does not fit the open-file limit of %d: taking at most %d connections"
            " (raise the limit with `ulimit -n`)",
            wanted,
            soft,
            fits,
        )
        return fits
    return wanted


class GuardedSite(web.BaseSite):
    """A TCP listening socket whose connections go through a ``ConnectionGuard``.

    It listens on ``settings.host``/``settings.port`` unless ``host``/``port`` say otherwise (tests bind a free
    loopback port while the settings describe a public address).
    """

    __slots__ = ("_accept_errors", "_host", "_port", "guard")

    def __init__(
        self,
        runner: web.BaseRunner,
        settings: ServerSettings,
        *,
        host: str | None = None,
        port: int | None = None,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        assert runner.server is not None
        self._host = settings.host if host is None else host
        self._port = settings.port if port is None else port
        self.guard = ConnectionGuard(runner.server, settings, connection_cap(settings.max_connections, backlog))
        self._accept_errors: AcceptErrors | None = None

    @property
    def name(self) -> str:
        return f"http://{url_host(self._host)}:{self._port}"

    @property
    def port(self) -> int:
        """The bound port (the requested one before ``start``)."""
        if self._server is not None:
            for sock in self._server.sockets:  # type: ignore[attr-defined]
                return int(sock.getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._accept_errors = AcceptErrors(loop)
        self._accept_errors.install()
        self._server = await loop.create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_address=True
        )

    async def stop(self) -> None:
        if self._accept_errors is not None:
            self._accept_errors.remove()
            self._accept_errors = None
        await super().stop()
