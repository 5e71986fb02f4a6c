"""Every shape an ``Authorization`` header can take is a 401 with the JSON error body when it is not the key:
non-UTF-8 bytes, a bare scheme, unknown schemes, Basic credentials that are not base64 or not UTF-8, repeated
headers. None is a 500, none writes a traceback."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from sakura_core.server.settings import ServerSettings
from sakura_core.testing.rawhttp import RawReply, exchange

BODY = b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}'

SHAPES: dict[str, list[bytes]] = {
    "non-UTF-8 bearer": [b"Bearer \xff\xfe"],
    "non-UTF-8 bearer, the key's prefix": [b"Bearer s3cret\xff"],
    "latin-1 letters": [b"Bearer s\xe9cret"],
    "bare scheme": [b"Bearer"],
    "scheme and spaces": [b"Bearer    "],
    "empty": [b""],
    "unknown scheme": [b"Token s3cret"],
    "key alone": [b"s3cret"],
    "Basic not base64": [b"Basic !!!"],
    "Basic of non-UTF-8": [b"Basic " + base64.b64encode(b"\xff\xfe:\xff")],
    "Basic without a colon": [b"Basic " + base64.b64encode(b"s3cret")],
    "Basic non-ASCII": [b"Basic \xc3\xa9\xc3\xa9"],
    "Basic bare": [b"Basic"],
    "two headers, the first wrong": [b"Bearer wrong", b"Bearer s3cret"],
    "very long": [b"Bearer " + b"\xff" * 7000],
}


def request_with(authorizations: list[bytes]) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"".join(b"Authorization: " + value + b"\r\n" for value in authorizations)
    head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
    return head + BODY


@pytest.mark.parametrize("name", list(SHAPES))
async def test_every_wrong_authorization_shape_is_a_401_without_a_traceback(start_server, caplog, name) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(settings=ServerSettings(api_key="s3cret"))
    raw = await asyncio.to_thread(exchange, server.port, request_with(SHAPES[name]))
    reply = RawReply.parse(raw)
    assert reply.status == 401, raw[:300]
    assert reply.json()["error"]["code"] == "invalid_api_key"
    assert "www-authenticate" in reply.headers
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_control_character_in_the_header_is_a_400_from_the_parser(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="s3cret"))
    reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, request_with([b"Bearer s3\x01cret"])))
    assert (reply.status, reply.json()["error"]["code"]) == (400, "invalid_http")


async def test_non_utf8_basic_password_against_basic_auth_is_a_401(start_server) -> None:
    server = await start_server(settings=ServerSettings(basic_auth=("sakura", "pass")))
    for value in (b"Basic " + base64.b64encode(b"sakura:\xff"), b"Bearer \xff", b"Basic \xff\xfe"):
        reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, request_with([value])))
        assert reply.status == 401, value


async def test_the_right_key_still_passes_beside_the_shapes(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="s3cret"))
    for value in (b"Bearer s3cret", b"bearer   s3cret  ", b"Basic " + base64.b64encode(b"anyone:s3cret")):
        reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, request_with([value])))
        assert reply.status == 200, (value, reply.body[:200])


async def test_without_auth_a_non_utf8_header_is_ignored(start_server) -> None:
    server = await start_server()
    reply = RawReply.parse(await asyncio.to_thread(exchange, server.port, request_with([b"Bearer \xff\xfe"])))
    assert reply.status == 200
