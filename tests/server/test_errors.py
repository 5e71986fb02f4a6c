"""Bad input gets OpenAI-shaped errors with the right status, and the server keeps answering afterwards."""

from __future__ import annotations

import jsonschema
import pytest

from sakura_core.server.settings import ServerSettings

USER = {"role": "user", "content": "こんにちは"}


async def still_serving(api) -> None:
    reply = await api.post("/v1/chat/completions", {"messages": [USER], "max_tokens": 3})
    assert reply.status == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "empty"),
        (b"[1, 2]", "invalid_json", "JSON object"),
        (b"\xff\xfe\xfa", "invalid_json", "not valid JSON"),
    ],
)
async def test_malformed_json(api, body: bytes, code: str, fragment: str) -> None:
    reply = await api.post("/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.error["type"] == "invalid_request_error"
    assert reply.error["code"] == code
    assert fragment in reply.error["message"]
    await still_serving(api)


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({}, "messages", "Field required"),
        ({"messages": "hello"}, "messages", "valid list"),
        ({"messages": [USER], "temperature": "hot"}, "temperature", "valid number"),
        ({"messages": [USER], "max_tokens": "many"}, "max_tokens", "valid integer"),
        ({"messages": [USER], "stream": "sometimes"}, "stream", "valid boolean"),
        ({"messages": [{"content": "no role"}]}, "messages.0.role", "Field required"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", ""),
    ],
)
async def test_wrong_types(api, body: dict, param: str, fragment: str) -> None:
    reply = await api.post("/v1/chat/completions", body)
    assert reply.status == 400
    assert reply.error["param"] == param
    assert param in reply.error["message"] and fragment in reply.error["message"]
    await still_serving(api)


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "at least one message"),
        ([{"role": "tool", "content": "x"}], "messages[0].role"),
        ([USER, {"role": "narrator", "content": "x"}], "messages[1].role"),
    ],
)
async def test_empty_or_malformed_messages(api, messages: list, fragment: str) -> None:
    reply = await api.post("/v1/chat/completions", {"messages": messages})
    assert reply.status == 400
    assert fragment in reply.error["message"]
    assert reply.error["param"] == "messages"
    await still_serving(api)


async def test_role_order_is_never_rejected(api) -> None:
    for messages in (
        [{"role": "assistant", "content": "a"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [{"role": "user", "content": "a"}, {"role": "system", "content": "late system"}],
    ):
        reply = await api.post("/v1/chat/completions", {"messages": messages, "max_tokens": 2})
        assert reply.status == 200, reply.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", 1.5),
        ("top_k", -1),
        ("max_tokens", 0),
        ("max_tokens", -5),
        ("frequency_penalty", 3),
        ("presence_penalty", -2.1),
        ("repetition_penalty", 0),
        ("num_beams", 0),
    ],
)
async def test_out_of_range_parameters(api, field: str, value: float) -> None:
    reply = await api.post("/v1/chat/completions", {"messages": [USER], field: value})
    assert reply.status == 400
    assert reply.error["param"] == field
    assert reply.error["code"] == "invalid_value"
    await still_serving(api)


async def test_prompt_longer_than_the_context(start_server) -> None:
    server = await start_server(n_ctx=64)
    reply = await server.api.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "長" * 80}]})
    assert reply.status == 400
    error = reply.error
    assert error["code"] == "context_length_exceeded"
    prompt_tokens = len(server.state.service.model.render([{"role": "user", "content": "長" * 80}]))
    assert f"{prompt_tokens} tokens" in error["message"] and "64 tokens" in error["message"]
    assert not server.engine.calls  # never reached the engine
    reply = await server.api.post("/completion", {"prompt": "x" * 64})
    assert reply.status == 400 and "64 tokens" in reply.error["message"]
    await still_serving(server.api)


async def test_body_over_the_size_limit(start_server) -> None:
    server = await start_server(settings=ServerSettings(max_body_bytes=4096))
    big = {"messages": [{"role": "user", "content": "x" * 10_000}]}
    reply = await server.api.post("/v1/chat/completions", big)
    assert reply.status == 413
    assert reply.error["code"] == "request_too_large" and "4096" in reply.error["message"]
    await still_serving(server.api)


async def test_engine_failure_is_500_with_the_engines_message(start_server) -> None:
    server = await start_server(fail_on="BOOM")
    for path, body in (
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "BOOM"}]}),
        ("/v1/completions", {"prompt": "BOOM"}),
        ("/completion", {"prompt": "BOOM"}),
        ("/api/v1/generate", {"prompt": "BOOM"}),
    ):
        reply = await server.api.post(path, body)
        assert reply.status == 500, path
        assert reply.error["type"] == "server_error" and reply.error["code"] == "engine_error"
        assert "reference engine asked to fail on 'BOOM'" in reply.error["message"]
    reply = await server.api.post(
        "/v1/chat/completions", {"messages": [{"role": "user", "content": "BOOM"}], "stream": True}
    )
    assert reply.status == 200  # headers were already sent; the error is the last event
    events = reply.sse().json()
    assert "asked to fail" in events[-1]["error"]["message"]
    assert reply.sse().data[-1] == "[DONE]"  # a stream the server ends is never just cut
    assert server.state.scheduler.active == 0
    await still_serving(server.api)


async def test_unknown_route_and_wrong_method(api) -> None:
    reply = await api.get("/v2/nothing")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    reply = await api.get("/v1/chat/completions")
    assert reply.status == 405 and reply.error["code"] == "method_not_allowed"
    assert "POST" in reply.headers["Allow"]
    await still_serving(api)


async def test_several_prompts_in_one_request(api) -> None:
    reply = await api.post("/v1/completions", {"prompt": ["a", "b"]})
    assert reply.status == 400 and reply.error["param"] == "prompt"
    reply = await api.post("/completion", {"prompt": "a", "n_predict": 0})
    assert reply.status == 400 and reply.error["param"] == "n_predict"


async def test_contract_check_catches_drift(api) -> None:
    """The OpenAPI check the other tests rely on rejects answers that leave the documented shape."""
    body = (await api.get("/v1/models")).json()
    api.contract.check("GET", "/v1/models", 200, body)
    with pytest.raises(jsonschema.ValidationError):
        api.contract.check("GET", "/v1/models", 200, {**body, "unexpected": 1})
    card = {k: v for k, v in body["data"][0].items() if k != "id"}
    with pytest.raises(jsonschema.ValidationError):
        api.contract.check("GET", "/v1/models", 200, {**body, "data": [card]})
    with pytest.raises(jsonschema.ValidationError):
        api.contract.check("POST", "/v1/chat/completions", 400, {"error": {"message": "x"}})
