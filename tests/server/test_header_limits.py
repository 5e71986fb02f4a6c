"""The header block of one request is bounded (``max_header_bytes``, 431 past it), before auth and before aiohttp's
parser buffers it; aiohttp's own limits (line, field, field count) are set explicitly. Loopback sockets only."""

from __future__ import annotations

import asyncio
import socket
import time

from sakura_core.server.settings import ServerSettings
from sakura_core.testing.rawhttp import RawReply, exchange

LIMIT = 4096
SMALL = ServerSettings(max_header_bytes=LIMIT)


def filler(total: int, line: int = 100) -> bytes:
    """Header lines of ``line`` bytes each, ``total`` bytes in all."""
    return b"".join(b"X-Fill-%04d: %s\r\n" % (i, b"a" * (line - 15)) for i in range(total // line))


def get(extra: bytes, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + connection + b"\r\n"


async def test_a_header_block_over_the_limit_gets_a_431(start_server) -> None:
    server = await start_server(settings=SMALL)
    reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, get(filler(6000))))
    assert reply.status == 431
    assert reply.json()["error"]["code"] == "request_header_too_large"
    assert str(LIMIT) in reply.json()["error"]["message"]
    assert (await server.api.get("/health")).status == 200


async def test_the_limit_applies_before_auth(start_server) -> None:
    server = await start_server(settings=ServerSettings(max_header_bytes=LIMIT, api_key="k"))
    reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, get(filler(6000))))
    assert reply.status == 431


def unfinished(port: int, size: int) -> tuple[float, bytes]:
    """Send ``size`` bytes of header lines that never end the block; how long until the server closed, what came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + filler(size))
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    return time.monotonic() - started, received


async def test_a_header_block_that_never_ends_is_cut_at_the_limit_not_at_the_timeout(start_server) -> None:
    server = await start_server(settings=SMALL)  # the header timeout is 10 s
    open_before = server.site.guard.open
    results = await asyncio.gather(*(asyncio.to_thread(unfinished, server.port, 8000) for _ in range(20)))
    for seconds, received in results:
        assert seconds < 2.0, seconds
        assert received.startswith(b"HTTP/1.1 431"), received[:80]
    for _ in range(100):
        if server.site.guard.open == open_before:
            break
        await asyncio.sleep(0.01)
    assert server.site.guard.open == open_before  # every attacking connection is gone


async def test_headers_under_the_limit_pass_and_each_request_is_counted_afresh(start_server) -> None:
    server = await start_server(settings=SMALL)
    request = get(filler(3000), close=False)
    raw = await asyncio.to_thread(exchange, server.port, request + request + get(filler(3000)), 5)
    assert raw.count(b"HTTP/1.1 200") == 3, raw[:200]


async def test_a_large_body_is_not_counted_as_header(start_server) -> None:
    server = await start_server(settings=SMALL)
    prompt = "x" * 50_000
    body = b'{"prompt": "%s", "max_tokens": 1}' % prompt.encode()
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    raw = await asyncio.to_thread(exchange, server.port, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    reply = RawReply.parse(raw)
    # the body was read and parsed: its prompt is too long for the reference engine's context, not its headers
    assert (reply.status, reply.json()["error"]["code"]) == (400, "context_length_exceeded"), raw[:200]


async def test_too_many_header_fields_is_a_431(start_server) -> None:
    server = await start_server()
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, get(many)))
    assert (reply.status, reply.json()["error"]["code"]) == (431, "request_header_too_large")
