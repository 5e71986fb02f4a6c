"""The real ``openai`` client (sync and async, stream and not) against the server over the reference engine."""

from __future__ import annotations

import asyncio

import openai
import pytest

MODEL_ID = "sakura-7b-qwen2.5-v1.0-iq4xs"
SOURCE = "やる気マンゴスキン"
MESSAGES = [
    {"role": "system", "content": "你是一个轻小说翻译模型。"},
    {"role": "user", "content": f"将下面的日文文本翻译成中文：{SOURCE}"},
]


def async_client(server) -> openai.AsyncOpenAI:
    # clients send all kinds of keys to a server without auth; this one is LunaTranslator's habit
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-114514", max_retries=0, timeout=10)


def sync_client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="no-key", max_retries=0, timeout=10)


async def test_async_chat_completion(server, expected_answer) -> None:
    client = async_client(server)
    completion = await client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, temperature=0)
    assert completion.model == MODEL_ID
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected_answer(MESSAGES[-1]["content"])
    assert choice.finish_reason == "stop"
    prompt, params = server.engine.calls[-1]
    assert completion.usage.prompt_tokens == server.engine.count_tokens(prompt)
    assert completion.usage.completion_tokens == 24
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 24
    assert params.max_tokens == 512 and params.temperature == 0.0
    await client.close()


async def test_sync_chat_completion_cut_by_max_tokens(server, expected_answer) -> None:
    def call() -> openai.types.chat.ChatCompletion:
        with sync_client(server) as client:
            return client.chat.completions.create(model="", messages=MESSAGES, max_tokens=7, seed=3, temperature=0)

    completion = await asyncio.to_thread(call)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 7
    assert completion.choices[0].message.content == expected_answer(MESSAGES[-1]["content"], 7)


async def test_async_chat_stream(server, expected_answer) -> None:
    client = async_client(server)
    stream = await client.chat.completions.create(
        model="sukinishiro",
        messages=MESSAGES,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert all(chunk.model == MODEL_ID for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    pieces = [chunk.choices[0].delta.content for chunk in chunks[1:-2]]
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert len(pieces) == 24  # one token per chunk
    assert "".join(pieces) == expected_answer(MESSAGES[-1]["content"])
    final, usage = chunks[-2], chunks[-1]
    assert final.choices[0].finish_reason == "stop" and final.choices[0].delta.content is None
    assert usage.choices == [] and usage.usage.completion_tokens == 24
    await client.close()


async def test_sync_chat_stream_matches_non_stream(server) -> None:
    def call() -> tuple[str, str, str | None]:
        with sync_client(server) as client:
            whole = client.chat.completions.create(model="x", messages=MESSAGES, seed=42)
            streamed = client.chat.completions.create(model="x", messages=MESSAGES, seed=42, stream=True)
            pieces, finish = [], None
            for chunk in streamed:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            return whole.choices[0].message.content or "", "".join(pieces), finish

    whole, streamed, finish = await asyncio.to_thread(call)
    assert whole == streamed and len(whole) == 24
    assert finish == "stop"


async def test_async_completion_raw_prompt(server, expected_answer) -> None:
    client = async_client(server)
    prompt = "<|im_start|>user\nおはよう<|im_end|>\n<|im_start|>assistant\n"
    completion = await client.completions.create(model="x", prompt=prompt, max_tokens=5, temperature=0)
    assert completion.model == MODEL_ID
    assert completion.choices[0].text == expected_answer("おはよう", 5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5 and completion.usage.prompt_tokens == len(prompt)
    assert server.engine.calls[-1][0] == prompt  # sent verbatim
    stream = await client.completions.create(model="x", prompt=prompt, max_tokens=5, temperature=0, stream=True)
    texts = [chunk.choices[0].text async for chunk in stream]
    assert "".join(texts) == expected_answer("おはよう", 5)
    await client.close()


async def test_models_list(server) -> None:
    client = async_client(server)
    models = await client.models.list()
    assert [model.id for model in models.data] == [MODEL_ID]
    await client.close()


async def test_engine_failure_reaches_client_as_error(start_server) -> None:
    server = await start_server(fail_on="BOOM")
    client = async_client(server)
    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="x", messages=[{"role": "user", "content": "BOOM"}])
    assert "asked to fail" in str(raised.value)
    stream = await client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "BOOM"}], stream=True
    )
    with pytest.raises(openai.APIError, match="asked to fail"):
        async for _ in stream:
            pass
    # the server keeps serving
    completion = await client.chat.completions.create(model="x", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    await client.close()


async def test_bad_request_raises_client_error(server) -> None:
    client = async_client(server)
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="x", messages=[{"role": "tool", "content": "hi"}])
    assert raised.value.status_code == 400
    assert "role" in raised.value.message
    await client.close()
