"""HTTP-level behaviour: aiohttp's protocol errors in the JSON error shape, HEAD on GET routes, and an access log
that client text cannot forge."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sakura_core.server.http.logtext import escape_for_log
from sakura_core.server.settings import ServerSettings

HOST = "Host: 127.0.0.1\r\n"
MALFORMED = {
    "Content-Length: -1": f"POST /v1/completions HTTP/1.1\r\n{HOST}Content-Length: -1\r\n\r\n{{}}",
    "Content-Length and Transfer-Encoding": (
        f"POST /v1/completions HTTP/1.1\r\n{HOST}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\n{}\r\n0\r\n\r\n"
    ),
    "URL over 8 KB": f"GET /health?{'a' * 9000} HTTP/1.1\r\n{HOST}\r\n",
    "header over 8 KB": f"GET /health HTTP/1.1\r\n{HOST}X-Big: {'a' * 9000}\r\n\r\n",
    "bad header line": f"GET /health HTTP/1.1\r\n{HOST}no colon here\r\n\r\n",
    "not HTTP": "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_http_gets_the_json_error_body(server, raw_exchange, parse_raw_reply, caplog, name) -> None:
    caplog.set_level(logging.DEBUG)
    data = await asyncio.to_thread(raw_exchange, server.port, MALFORMED[name].encode("latin-1"))
    reply = parse_raw_reply(data)
    assert reply.status == 400, data[:200]
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["type"] == "invalid_request_error"
    assert error["code"] in ("invalid_http", "request_header_too_large")
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert (await server.api.get("/health")).status == 200


async def test_an_oversized_header_says_what_is_too_long(server, raw_exchange, parse_raw_reply) -> None:
    reply = parse_raw_reply(await asyncio.to_thread(raw_exchange, server.port, MALFORMED["URL over 8 KB"].encode()))
    assert reply.json()["error"]["code"] == "request_header_too_large"
    assert "longer than 8190 bytes" in reply.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/models", "/slots", "/metrics", "/openapi.json"])
async def test_head_on_get_routes_answers_as_get_without_a_body(server, raw_exchange, parse_raw_reply, path) -> None:
    get = await server.api.get(path)
    head = parse_raw_reply(
        await asyncio.to_thread(
            raw_exchange, server.port, f"HEAD {path} HTTP/1.1\r\n{HOST}Connection: close\r\n\r\n".encode()
        )
    )
    assert head.status == get.status == 200
    assert head.body == b""
    assert head.headers["content-type"] == get.headers["Content-Type"]


async def test_head_needs_credentials_where_get_does(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="k"))
    async with server.api.session.head(server.url + "/v1/models") as response:
        assert response.status == 401
    async with server.api.session.head(server.url + "/health") as response:
        assert response.status == 200


async def test_the_access_log_escapes_control_characters(api, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sakura_core.server.access")
    await api.get("/x%0A12:00:00%20INFO%20forged%20line%1B[31mred%E2%80%A8%5C")
    lines = [r.getMessage() for r in caplog.records if r.name == "sakura_core.server.access"]
    line = next(line for line in lines if "/x" in line)
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert "/x\\x0a12:00:00 INFO forged line\\x1b[31mred\\u2028\\\\ 404" in line


def test_escape_for_log() -> None:
    assert escape_for_log("plain/path-ü字") == "plain/path-ü字"
    assert escape_for_log("a\r\nb\tc\x7f\x9b\ud800\\") == "a\\x0d\\x0ab\\x09c\\x7f\\x9b\\ud800\\\\"
