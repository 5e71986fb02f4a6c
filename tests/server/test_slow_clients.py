"""Slow and idle clients: header, body and keep-alive timeouts, the connection cap, the open-file limit, and
failing accept() calls logged once per interval. Real sockets to 127.0.0.1 only, bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from pathlib import Path

import aiohttp

from sakura_core.server.http.connections import ACCEPT_FAILED, AcceptErrors
from sakura_core.server.settings import ServerSettings

#: Short timeouts, so that each test waits half a second, not the defaults' 10-30 seconds.
QUICK = ServerSettings(header_timeout_seconds=0.5, body_timeout_seconds=0.5, keepalive_timeout_seconds=0.5)
#: The longest a test waits for the server to close a connection.
PATIENCE = 5.0
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def hold(port: int, payload: bytes, *, trickle: float = 0.0, limit: float = PATIENCE) -> tuple[float, bytes]:
    """Connect, send ``payload`` (a byte every ``trickle`` seconds if set), then read until the server closes.

    Returns how long the server kept the connection and what it sent; ``limit`` seconds at most.
    """
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        try:
            if trickle:
                for byte in payload:
                    sock.sendall(bytes([byte]))
                    time.sleep(trickle)
                    if time.monotonic() - started > limit:
                        break
            elif payload:
                sock.sendall(payload)
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return limit, received
        except OSError:
            pass
    return time.monotonic() - started, received


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(start_server) -> None:
    server = await start_server(settings=QUICK)
    seconds, received = await asyncio.to_thread(hold, server.port, b"")
    assert received == b""
    assert 0.4 < seconds < 2.5, seconds


async def test_half_a_header_gets_a_408_then_a_close(start_server, parse_raw_reply) -> None:
    server = await start_server(settings=QUICK)
    seconds, received = await asyncio.to_thread(hold, server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert 0.4 < seconds < 2.5, seconds
    reply = parse_raw_reply(received)
    assert reply.status == 408 and reply.json()["error"]["code"] == "request_timeout"


async def test_a_header_trickled_a_byte_at_a_time_is_cut(start_server) -> None:
    server = await start_server(settings=QUICK)
    header = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    seconds, received = await asyncio.to_thread(hold, server.port, header, trickle=0.05)
    # cut at the header timeout, though bytes kept coming (the 408 may be lost to the reset that the bytes sent
    # after the close cause)
    assert 0.4 < seconds < 2.5, seconds
    assert received in (b"", *([received] if received.startswith(b"HTTP/1.1 408") else []))


async def test_a_stalled_body_is_cut_at_the_body_timeout(start_server, parse_raw_reply) -> None:
    server = await start_server(settings=QUICK)
    stalled = b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"prompt": '
    seconds, received = await asyncio.to_thread(hold, server.port, stalled)
    assert 0.4 < seconds < 2.5, seconds
    assert parse_raw_reply(received).status == 408


async def test_an_idle_keepalive_connection_is_closed_after_the_keepalive_timeout(start_server) -> None:
    server = await start_server(settings=QUICK)
    seconds, received = await asyncio.to_thread(hold, server.port, HEALTH)
    assert received.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in received
    assert 0.4 < seconds < 2.5, seconds


async def test_a_keepalive_connection_serves_requests_within_the_timeout(start_server) -> None:
    server = await start_server(settings=QUICK)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(5):
            async with session.get(server.url + "/health") as response:
                assert response.status == 200
            await asyncio.sleep(0.2)  # idle, but less than the keep-alive timeout each time


async def test_a_stream_and_a_queued_request_outlast_every_timeout(start_server, sse_parser) -> None:
    """A streaming answer is not idle, and neither is a request waiting for its slot."""
    server = await start_server(settings=QUICK, parallel=1, token_delay=0.05, answer_length=30)
    body = {"messages": [{"role": "user", "content": "こんにちは"}], "temperature": 0}
    async with aiohttp.ClientSession() as session:

        async def stream() -> str:
            async with session.post(server.url + "/v1/chat/completions", json={**body, "stream": True}) as response:
                return (await response.read()).decode()

        async def queued() -> dict:
            await asyncio.sleep(0.1)
            async with session.post(server.url + "/v1/chat/completions", json=body) as response:
                assert response.status == 200
                return await response.json()

        started = time.monotonic()
        streamed, answer = await asyncio.gather(stream(), queued())
    assert time.monotonic() - started > 2.5  # 1.5 s each, one after the other: well past every 0.5 s timeout
    assert sse_parser(streamed).data[-1] == "[DONE]"
    assert answer["usage"]["completion_tokens"] == 30


async def wait_for(condition) -> None:
    for _ in range(int(PATIENCE / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


async def test_past_the_connection_cap_new_connections_get_a_503_at_once(start_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sakura_core.server.http.connections")
    server = await start_server(settings=ServerSettings(max_connections=8))
    pooled = server.site.guard.open  # the test client's keep-alive connection
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8 - pooled)]
    try:
        await wait_for(lambda: server.site.guard.open == 8)
        for _ in range(5):
            seconds, received = await asyncio.to_thread(hold, server.port, HEALTH)
            assert seconds < 1.0, seconds
            assert received.startswith(b"HTTP/1.1 503"), received[:60]
            assert b'"code":"too_many_connections"' in received and b"Retry-After: 1" in received
    finally:
        for sock in held:
            sock.close()
    await wait_for(lambda: server.site.guard.open == pooled)
    assert (await server.api.get("/health")).status == 200
    refusals = [r for r in caplog.records if "refusing new connections" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]


def proc_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(run_sakura) -> None:
    process = run_sakura(nofile=(256, 1024))
    assert proc_limits(process.process.pid) == (1024, 1024)


def test_a_server_at_its_open_file_limit_refuses_cheaply_and_logs_little(run_sakura) -> None:
    """The issue's scenario scaled down: more idle sockets than the server may open files. The server must keep
    answering (a 503 while full, 200 once its header timeout freed the idle sockets) without a log flood."""
    sockets_wanted = 300
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sockets_wanted + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sockets_wanted + 200), hard))
    process = run_sakura("--header-timeout", "2", nofile=(256, 256))
    held: list[socket.socket] = []
    try:
        for _ in range(sockets_wanted):
            sock = socket.socket()
            sock.settimeout(2)
            with contextlib.suppress(OSError):
                sock.connect(("127.0.0.1", process.port))
            held.append(sock)
        time.sleep(0.5)
        seconds, received = hold(process.port, HEALTH, limit=3)
        assert seconds < 2, f"no answer in {seconds:.1f}s: {received[:100]!r}\n{process.log()[-3000:]}"
        assert received.startswith(b"HTTP/1.1 503") and b"too_many_connections" in received, received[:80]
        time.sleep(2.5)  # the header timeout closes the idle sockets
        assert process.get("/health")[0] == 200
    finally:
        for sock in held:
            sock.close()
    log = process.log()
    assert "Traceback" not in log and "out of system resource" not in log
    assert len(log.splitlines()) < 30, log[-2000:]
    assert "--max-connections 1024 does not fit the open-file limit of 256" in log


async def test_failing_accepts_are_logged_once_per_interval(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sakura_core.server.http.connections")
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
    errors = AcceptErrors(loop, interval=0.2)
    errors.install()
    try:
        failure = {"message": ACCEPT_FAILED, "exception": OSError(24, "Too many open files")}
        for _ in range(500):
            loop.call_exception_handler(failure)
        loop.call_exception_handler({"message": "something else"})
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "cannot accept connections" in lines[0] and "Too many open files" in lines[0]
        await asyncio.sleep(0.25)
        loop.call_exception_handler(failure)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "500 times in the last" in lines[1]
        assert seen == ["something else"]  # other reports reach the handler that was there before
    finally:
        errors.remove()
        installed = loop.get_exception_handler()
        loop.set_exception_handler(before)
    assert installed is not errors


async def test_the_accept_log_is_installed_while_serving(start_server) -> None:
    loop = asyncio.get_running_loop()
    await start_server()
    assert isinstance(loop.get_exception_handler(), AcceptErrors)
