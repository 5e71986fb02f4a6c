"""A client that stops reading its stream: past the send timeout the stream is ended, its generation cancelled and
its slot freed, the log says why, and other clients are served meanwhile. Loopback sockets only."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator

from sakura_core.server.settings import ServerSettings
from sakura_core.types import SamplingParams

#: Bytes in each token of the flooding engine: a non-reading client's buffers fill after a few hundred events.
TOKEN_BYTES = 16 * 1024


def paced_engine(base: type, token: str, pause: float) -> type:
    class Paced(base):  # type: ignore[misc, valid-type]
        """Yields ``token`` every ``pause`` seconds, up to ``max_tokens``."""

        async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
            self.active += 1
            try:
                for _ in range(params.max_tokens):
                    await asyncio.sleep(pause)
                    yield token
            finally:
                self.active -= 1

    return Paced


def flooding_engine(base: type) -> type:
    """Long tokens as fast as the client takes them."""
    return paced_engine(base, "x" * TOKEN_BYTES, 0)


def open_silent_stream(port: int) -> socket.socket:
    """A streaming request from a client with a small receive buffer that then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    body = json.dumps({"prompt": "hello", "max_tokens": 4000, "stream": True}).encode()
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    return sock


def access_lines(caplog) -> list[str]:
    messages = [r.getMessage() for r in caplog.records]
    return [m for m in messages if m.startswith("POST /v1/completions 200 stream") and "send timeout" in m]


async def test_a_stream_whose_client_reads_nothing_is_ended_at_the_send_timeout(
    start_server, recording_engine_class, caplog
) -> None:
    caplog.set_level(logging.INFO)
    settings = ServerSettings(send_timeout_seconds=0.5)
    server = await start_server(settings=settings, engine_class=flooding_engine(recording_engine_class), parallel=2)
    silent = [open_silent_stream(server.port) for _ in range(2)]  # every slot
    try:
        started = time.monotonic()
        # the other clients are served meanwhile: queued behind the silent streams until their slots come free
        reply = await asyncio.wait_for(server.api.post("/v1/completions", {"prompt": "hi", "max_tokens": 2}), 15)
        assert reply.status == 200
        assert time.monotonic() - started < 10
        for _ in range(500):
            if server.state.scheduler.active == 0 and server.engine.active == 0 and len(access_lines(caplog)) == 2:
                break
            await asyncio.sleep(0.01)
        assert server.state.scheduler.active == 0 and server.engine.active == 0
    finally:
        for sock in silent:
            sock.close()
    messages = [r.getMessage() for r in caplog.records]
    ended = [m for m in messages if "--send-timeout" in m]
    assert len(ended) == 2, messages
    assert len(access_lines(caplog)) == 2, messages
    assert server.state.metrics.outcomes["send_timeout"] == 2


async def open_stream(port: int, max_tokens: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A streaming completion request sent on a new connection; the client reads the reply itself."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"prompt": "hello", "max_tokens": max_tokens, "stream": True}).encode()
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    return reader, writer


async def test_a_slow_but_reading_client_is_not_cut(start_server, recording_engine_class) -> None:
    settings = ServerSettings(send_timeout_seconds=0.5)
    server = await start_server(settings=settings, engine_class=flooding_engine(recording_engine_class))
    reader, writer = await open_stream(server.port, max_tokens=40)
    received = 0
    while chunk := await reader.read(65536):
        received += len(chunk)
        await asyncio.sleep(0.05)  # slower than the server writes, well within the send timeout each time
    writer.close()
    assert received > 40 * TOKEN_BYTES
    assert server.state.metrics.outcomes["send_timeout"] == 0


def trickling_engine(base: type) -> type:
    """Short tokens at a model's pace (one every few milliseconds)."""
    return paced_engine(base, "x", 0.004)


async def test_the_send_timeout_starts_when_the_client_stops_reading_not_when_buffers_fill(
    start_server, recording_engine_class
) -> None:
    """Short tokens at a model's pace take many seconds to fill the server's buffers; a client that reads nothing
    from the start is still ended within about the send timeout."""
    settings = ServerSettings(send_timeout_seconds=0.5)
    server = await start_server(settings=settings, engine_class=trickling_engine(recording_engine_class))
    sock = open_silent_stream(server.port)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 6:
            if server.state.metrics.outcomes["send_timeout"] == 1 and server.state.scheduler.active == 0:
                break
            await asyncio.sleep(0.02)
        ended_after = time.monotonic() - started
    finally:
        sock.close()
    assert server.state.metrics.outcomes["send_timeout"] == 1
    assert ended_after < 0.5 + 1.0, f"ended {ended_after:.1f} s after the client stopped reading"


async def test_a_client_reading_a_model_paced_stream_in_bursts_is_not_cut(start_server, recording_engine_class) -> None:
    """A client that reads a 16 KiB chunk every 0.3 s, within the send timeout of 0.5 s, gets its whole stream."""
    settings = ServerSettings(send_timeout_seconds=0.5)
    server = await start_server(settings=settings, engine_class=trickling_engine(recording_engine_class))
    reader, writer = await open_stream(server.port, max_tokens=300)
    received = b""
    while chunk := await reader.read(16 * 1024):
        received += chunk
        await asyncio.sleep(0.3)
    writer.close()
    assert received.count(b'"text":"x"') == 300
    assert b"data: [DONE]" in received
    assert server.state.metrics.outcomes["send_timeout"] == 0
