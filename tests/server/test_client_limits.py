"""Slow bodies and greedy clients: a whole body has a deadline however steadily it trickles, and one address cannot
hold the connection cap. Loopback sockets only (other clients connect from 127.0.0.2), bounded in count and time."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from sakura_core.server.settings import ServerSettings
from sakura_core.testing.rawhttp import RawReply

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def health_from(port: int, source: str) -> tuple[float, bytes]:
    started = time.monotonic()
    with connect(port, source) as sock:
        sock.sendall(HEALTH)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return time.monotonic() - started, received


def trickle_body(port: int, seconds: float) -> tuple[float, bytes]:
    """A body sent one byte every 0.1 s (never pausing as long as the read timeout), until the server answers."""
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        sock.settimeout(0.1)
        received = b""
        while time.monotonic() - started < seconds:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    return time.monotonic() - started, received


async def test_a_body_trickled_steadily_is_cut_at_the_body_deadline(start_server) -> None:
    settings = ServerSettings(body_timeout_seconds=0.5, body_deadline_seconds=1.0)
    server = await start_server(settings=settings)
    seconds, received = await asyncio.to_thread(trickle_body, server.port, 6)
    assert 0.9 < seconds < 3.0, seconds
    reply = RawReply.parse(received)
    assert (reply.status, reply.json()["error"]["code"]) == (408, "request_timeout")
    assert "within 1 seconds" in reply.json()["error"]["message"]


def first_answers(socks: list[socket.socket]) -> list[bytes]:
    """What each socket received within 0.2 s (b"" for a socket the server admitted and waits on)."""
    answers = []
    for sock in socks:
        sock.settimeout(0.2)
        try:
            answers.append(sock.recv(65536))
        except TimeoutError:
            answers.append(b"")
    return answers


async def test_one_address_cannot_hold_the_connection_cap(start_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sakura_core.server.http.connections")
    server = await start_server(settings=ServerSettings(max_connections=40, max_connections_per_client=10))
    guard = server.site.guard
    before = guard.by_client.get("127.0.0.1", 0)  # the test client's pooled connection
    held = await asyncio.to_thread(lambda: [connect(server.port) for _ in range(30)])
    try:
        answers = await asyncio.to_thread(first_answers, held)
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert all(b'"code":"too_many_connections"' in a and b"Retry-After: 1" in a for a in refused)
        assert len(refused) == 20 + before and answers.count(b"") == 10 - before
        assert guard.by_client["127.0.0.1"] == 10
        # another address is served at once while this one holds all it may
        seconds, received = await asyncio.to_thread(health_from, server.port, "127.0.0.2")
        assert received.startswith(b"HTTP/1.1 200") and seconds < 1.0
    finally:
        for sock in held:
            sock.close()
    for _ in range(300):
        if guard.by_client.get("127.0.0.1", 0) <= before:
            break
        await asyncio.sleep(0.01)
    assert guard.by_client.get("127.0.0.1", 0) <= before and "127.0.0.2" not in guard.by_client
    assert (await server.api.get("/health")).status == 200
    lines = [r.getMessage() for r in caplog.records if "--max-connections-per-client" in r.getMessage()]
    assert len(lines) == 1, lines  # once per interval, not once per refusal


async def test_a_client_reopening_idle_sockets_leaves_others_served(start_server) -> None:
    """One address keeps opening idle sockets as fast as they are closed; another keeps getting 200 within 1 s."""
    settings = ServerSettings(max_connections=30, max_connections_per_client=10, header_timeout_seconds=0.3)
    server = await start_server(settings=settings)
    stop = time.monotonic() + 1.5

    def reopen() -> None:
        held: list[socket.socket] = []
        while time.monotonic() < stop:
            held = [s for s in held if s.fileno() >= 0]
            try:
                held.append(connect(server.port))
            except OSError:
                pass
            time.sleep(0.005)
            if len(held) > 40:
                held.pop(0).close()
        for sock in held:
            sock.close()

    attacker = asyncio.ensure_future(asyncio.to_thread(reopen))
    statuses = []
    while time.monotonic() < stop:
        seconds, received = await asyncio.to_thread(health_from, server.port, "127.0.0.2")
        assert seconds < 1.0
        statuses.append(received[:12])
        await asyncio.sleep(0.05)
    await attacker
    assert statuses and all(s == b"HTTP/1.1 200" for s in statuses), statuses
