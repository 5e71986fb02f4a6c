"""The per-token event template gives exactly the JSON the pydantic model gives."""

from __future__ import annotations

import pytest

from sakura_core.server.http.httpio import to_json
from sakura_core.server.http.jsontemplate import StringFieldTemplate
from sakura_core.server.routes.schemas.openai import (
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChunkDelta,
    CompletionChoice,
    CompletionChunk,
)


def chat_chunk(text: str) -> ChatCompletionChunk:
    delta = ChunkDelta(content=text)
    return ChatCompletionChunk(id="chatcmpl-1", created=1, model="m", choices=[ChatCompletionChunkChoice(delta=delta)])


def completion_chunk(text: str) -> CompletionChunk:
    return CompletionChunk(id="cmpl-1", created=1, model="m", choices=[CompletionChoice(text=text)])


TEXTS = ["字", "", 'quote " and \\ backslash', "line\nbreak\t", "\x00\x1f", "𝄞 \u2028", "<|im"]


@pytest.mark.parametrize("build", [chat_chunk, completion_chunk])
@pytest.mark.parametrize("text", TEXTS)
def test_template_matches_the_model(build, text: str) -> None:
    assert StringFieldTemplate(build).fill(text) == to_json(build(text))


def test_placeholder_must_appear_once() -> None:
    with pytest.raises(ValueError):
        StringFieldTemplate(lambda text: ChunkDelta(role="assistant", content=None))
