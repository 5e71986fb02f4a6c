"""Number fields take JSON numbers: strings and booleans are refused where no client sends them, while the Sakura
extras still come as strings from the URL query; the Server header names no library version."""

from __future__ import annotations

import asyncio
import logging

import pytest

CHAT = {"messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 2}


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "temperature", "0.5"),
        ("/v1/chat/completions", "max_tokens", True),
        ("/v1/chat/completions", "top_p", False),
        ("/v1/completions", "max_tokens", "5"),
        ("/v1/completions", "seed", True),
        ("/completion", "n_predict", True),
        ("/completion", "temperature", "0.5"),
    ],
)
async def test_strings_and_booleans_in_number_fields_are_refused(api, path, field, value) -> None:
    body = dict(CHAT) if "chat" in path else {"prompt": "こんにちは", "max_tokens": 2}
    reply = await api.post(path, {**body, field: value})
    assert reply.status == 400, reply.text
    assert reply.error["param"] == field and "JSON number" in reply.error["message"]


async def test_numbers_and_query_extras_as_strings_still_pass(api) -> None:
    reply = await api.post("/v1/chat/completions?do_sample=false&num_beams=1&repetition_penalty=1.0&top_k=40", CHAT)
    assert reply.status == 200
    body = {**CHAT, "temperature": 1, "max_tokens": 2.0, "extra_query": {"do_sample": "false", "top_k": "40"}}
    assert (await api.post("/v1/chat/completions", body)).status == 200
    assert (await api.post("/completion", {"prompt": "x", "n_predict": 2, "temperature": 0.5})).status == 200


async def test_the_server_header_names_no_library(api, raw_exchange, server, parse_raw_reply) -> None:
    for reply in (await api.get("/health"), await api.get("/nowhere")):
        assert reply.headers["Server"] == "sakura"
    request = b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
    raw = parse_raw_reply(await asyncio.to_thread(raw_exchange, server.port, request))
    assert raw.status == 400 and raw.headers["server"] == "sakura"


async def test_a_browser_text_plain_post_is_refused_but_a_proxys_is_not(api) -> None:
    data = b'{"prompt": "x", "max_tokens": 2}'
    foreign = {"Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8"}
    reply = await api.post("/v1/completions", data=data, headers=foreign)
    assert (reply.status, reply.error["code"]) == (415, "unsupported_media_type")
    for headers in (
        {"Content-Type": "text/plain"},  # the launcher's share mode forwards JSON as text/plain, without Origin
        {"Origin": "https://books.fishhawk.top", "Content-Type": "application/json"},  # preflighted
    ):
        assert (await api.post("/v1/completions", data=data, headers=headers)).status == 200


async def test_an_unknown_expectation_is_a_logged_json_417(server, raw_exchange, parse_raw_reply, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sakura_core.server.access")
    body = b'{"prompt": "x", "max_tokens": 2}'
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n" % len(body)
    reply = parse_raw_reply(await asyncio.to_thread(raw_exchange, server.port, head + b"Expect: 200-ok\r\n\r\n" + body))
    assert (reply.status, reply.json()["error"]["code"]) == (417, "expectation_failed")
    assert any(r.getMessage().startswith("POST /v1/completions 417") for r in caplog.records)
    raw = await asyncio.to_thread(raw_exchange, server.port, head + b"Expect: 100-continue\r\n\r\n" + body)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
