"""Server-sent events: headers at once, ``data: {json}`` events, and ``: ping`` comments while silent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from types import TracebackType
from typing import NoReturn

from aiohttp import web
from pydantic import BaseModel

from sakura_core.server.http.drain import DrainWatch
from sakura_core.server.http.errors import APIError
from sakura_core.server.http.httpio import to_json

PING = b": ping\n\n"
#: The kernel send buffer of a streaming connection, in bytes: token events are small, so this is ample for any
#: client that reads, and it bounds what a client that stops reading holds in the kernel (an auto-tuned buffer
#: grows to megabytes).
STREAM_SEND_BUFFER = 64 * 1024
DONE = b"data: [DONE]\n\n"


class SendTimeoutError(ConnectionError):
    """The client read nothing for the send timeout: the write could not finish, the connection was dropped."""


class EventStream:
    """An open text/event-stream response.

    ``async with EventStream(request, ping_seconds) as events:`` sends the headers at once; a background task
    writes a ``: ping`` comment whenever nothing was written for ``ping_seconds`` (a request waiting in the
    queue or in prefill keeps clients with read timeouts waiting). Writes to a client that went away raise
    ConnectionError. Once the client has taken nothing for ``send_timeout`` seconds (``DrainWatch`` starts the
    clock when its receive window closes, whatever the buffers behind), the next write, or the one waiting, drops
    the connection and raises ``SendTimeoutError``. A write waits while the kernel cannot take it, so at most one
    event waits in the server's memory.
    """

    def __init__(self, request: web.Request, ping_seconds: float, send_timeout: float | None = None) -> None:
        self.request = request
        self.ping_seconds = ping_seconds
        self.send_timeout = send_timeout
        #: True once a write timed out (the connection is dropped).
        self.timed_out = False
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self._last_write = 0.0
        self._pinger: asyncio.Task[None] | None = None
        self._watch = DrainWatch(request.transport)
        self._unblocked_bytes = 0  # writes shorter than this cannot make aiohttp wait (set once the stream opens)
        # the stream and the pinger take turns: the pinger skips while the stream writes, the stream waits for a ping
        self._writing = False
        self._pinging: asyncio.Future[None] | None = None

    async def __aenter__(self) -> EventStream:
        transport = self.request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        await self.response.prepare(self.request)
        if isinstance(transport, asyncio.WriteTransport):
            # the transport pauses its protocol past its high-water mark; 64 bytes spare for the chunk's framing
            self._unblocked_bytes = transport.get_write_buffer_limits()[1] - 64
        self._last_write = time.monotonic()
        self._pinger = asyncio.get_running_loop().create_task(self._ping_while_silent())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._pinger

    async def send(self, event: BaseModel) -> None:
        """One ``data: {json}`` event."""
        await self.send_json(to_json(event))

    async def send_json(self, payload: bytes) -> None:
        """One ``data: {json}`` event from JSON already serialised."""
        await self._write(b"data: " + payload + b"\n\n")

    async def send_error(self, error: APIError) -> None:
        """An error after the stream started: one ``data: {"error": ...}`` event (clients raise on it)."""
        await self.send(error.body())

    async def send_done(self) -> None:
        """The OpenAI end marker, ``data: [DONE]``."""
        await self._write(DONE)

    async def _write(self, payload: bytes) -> None:
        while self._pinging is not None:
            await asyncio.shield(self._pinging)
        self._writing = True
        try:
            await self._send(payload)
        finally:
            self._writing = False

    async def _ping(self) -> None:
        if self._writing:
            return
        self._pinging = asyncio.get_running_loop().create_future()
        try:
            await self._send(PING)
        finally:
            self._pinging.set_result(None)
            self._pinging = None

    async def _send(self, payload: bytes) -> None:
        if self.timed_out:
            raise SendTimeoutError("the client stopped reading")
        now = self._last_write = time.monotonic()
        self._watch.before_write()
        if self.send_timeout is not None and self._watch.stalled_for(now) >= self.send_timeout:
            self._time_out()
        if len(payload) < self._unblocked_bytes:
            await self.response.write(payload)  # nothing waits in the transport: this cannot block
        else:  # a write this large can fill the transport's buffer, and aiohttp then waits for room, without limit
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.response.write(payload)
            except TimeoutError:
                self._time_out()
        if not await self._watch.wait_until_taken(self.send_timeout):
            self._time_out()
        self._watch.after_write(time.monotonic())

    def _time_out(self) -> NoReturn:
        self.timed_out = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()  # what is buffered for this client will never be read
        raise SendTimeoutError(f"the client read nothing for {self.send_timeout:g} seconds") from None

    async def _ping_while_silent(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                due = self._last_write + self.ping_seconds - time.monotonic()
                if due > 0:
                    await asyncio.sleep(due)
                    continue
                await self._ping()
