"""U+2028, U+2029 and U+0085 are escaped in every JSON the server writes, so a client that splits a stream with
``str.splitlines()`` (LunaTranslator: ``requests``' ``iter_lines(decode_unicode=True)``) reads whole events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests

from sakura_core.server.http.jsonout import escape_line_breakers, to_json
from sakura_core.server.routes.schemas.openai import AssistantMessage
from sakura_core.types import SamplingParams

#: An answer full of the characters str.splitlines() breaks at, besides \n and \r.
ANSWER = "前\u2028後\u2029次\x85終。" * 3
RAW_BREAKERS = ("\u2028".encode(), "\u2029".encode(), "\x85".encode())


@pytest.fixture
async def breaker_server(start_server, recording_engine_class):
    class LineBreakers(recording_engine_class):
        def answer_for(self, prompt: str, params: SamplingParams) -> str:
            return ANSWER

    return await start_server(engine_class=LineBreakers, answer_length=len(ANSWER))


def read_like_lunatranslator(url: str, body: dict[str, Any]) -> list[Any]:
    """The stream read as LunaTranslator reads it: lines from ``iter_lines(decode_unicode=True)``, the first six
    characters (``data: ``) cut, the rest parsed as JSON."""
    events = []
    with requests.post(url, json=body, stream=True, timeout=30) as response:
        response.encoding = "utf-8"
        for line in response.iter_lines(decode_unicode=True):
            if not line or line.startswith(":"):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                break
            events.append(json.loads(payload))  # fails on half an event
    return events


STREAMS = {
    "/v1/chat/completions": (
        {"messages": [{"role": "user", "content": "x"}]},
        lambda event: event["choices"][0]["delta"].get("content", "") if event["choices"] else "",
    ),
    "/v1/completions": ({"prompt": "x"}, lambda event: event["choices"][0]["text"] if event["choices"] else ""),
    "/completion": ({"prompt": "x"}, lambda event: event["content"]),
    "/api/v1/stream/generate": ({"prompt": "x"}, lambda event: event["results"][0]["text"]),
}


@pytest.mark.parametrize("path", list(STREAMS))
async def test_streams_split_by_lines_still_give_whole_events(breaker_server, path: str) -> None:
    body, text_of = STREAMS[path]
    events = await asyncio.to_thread(read_like_lunatranslator, breaker_server.url + path, {**body, "stream": True})
    assert "".join(text_of(event) for event in events) == ANSWER


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/completion", "/api/v1/generate"])
async def test_json_answers_carry_the_characters_escaped(breaker_server, path: str) -> None:
    body = STREAMS.get(path, ({"prompt": "x"}, None))[0]
    reply = await breaker_server.api.post(path, body)
    assert reply.status == 200
    raw = reply.text.encode()
    assert not any(char in raw for char in RAW_BREAKERS)
    assert "\\u2028" in reply.text and ANSWER in json.dumps(reply.json(), ensure_ascii=False)


async def test_error_bodies_escape_them_too(api) -> None:
    reply = await api.get("/no%E2%80%A8such%C2%85route")
    assert reply.status == 404
    assert not any(char in reply.text.encode() for char in RAW_BREAKERS)


def test_escaping_keeps_the_json_equal() -> None:
    text = "a\u2028b\u2029c\x85d “quotes” …"
    raw = to_json(AssistantMessage(content=text))
    assert raw.count(b"\\u2028") == 1 and raw.count(b"\\u2029") == 1 and raw.count(b"\\u0085") == 1
    assert json.loads(raw)["content"] == text
    assert escape_line_breakers("“…”".encode()) == "“…”".encode()  # other U+20xx punctuation is left alone
