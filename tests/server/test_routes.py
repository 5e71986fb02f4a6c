"""Every route over raw HTTP: shapes (checked against the served OpenAPI document), SSE framing, identity."""

from __future__ import annotations

import json
import logging
import re

import jsonschema
import pytest

from sakura_core import hookimpl

MODEL_ID = "sakura-7b-qwen2.5-v1.0-iq4xs"
USER = {"role": "user", "content": "将下面的日文文本翻译成中文：こんにちは"}
SOURCE = USER["content"]


async def test_openapi_document_is_valid_and_lists_every_route(api) -> None:
    reply = await api.get("/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.")
    for path, method in [
        ("/v1/chat/completions", "post"),
        ("/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/completion", "post"),
        ("/v1/models", "get"),
        ("/models", "get"),
        ("/v1/chat/model_info", "get"),
        ("/api/core/version", "get"),
        ("/api/v1/generate", "post"),
        ("/api/v1/stream/generate", "post"),
        ("/slots", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
    ]:
        assert method in document["paths"][path], path
    # every schema in the document is itself a valid JSON schema
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema({**schema, "components": document["components"]})
    chat = document["components"]["schemas"]["ChatCompletionRequest"]
    assert "messages" in chat["required"]


async def test_openapi_says_what_the_server_enforces(api) -> None:
    document = (await api.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert schemas["ChatMessage"]["properties"]["role"]["enum"] == ["system", "user", "assistant"]
    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["minItems"] == 1
    assert schemas["ContentPart"]["properties"]["type"]["const"] == "text" and schemas["ContentPart"]["required"] == [
        "text"
    ]
    stop = schemas["CompletionRequest"]["properties"]["stop"]["anyOf"]
    assert {"maxLength": 256, "type": "string"} in stop
    assert any(option.get("maxItems") == 16 for option in stop)
    prompt_list = next(o for o in schemas["CompletionRequest"]["properties"]["prompt"]["anyOf"] if o["type"] == "array")
    assert prompt_list["minItems"] == prompt_list["maxItems"] == 1
    # the answers a request body can get, each documented
    responses = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "401", "408", "413", "415", "500", "503"} <= set(responses)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "こんにちは"}]}),
        ("/v1/completions", {"prompt": "x"}),
        ("/completion", {"prompt": "x"}),
        ("/api/v1/stream/generate", {"prompt": "x"}),
    ],
)
async def test_stream_events_match_the_documented_event_schema(api, path: str, body: dict) -> None:
    """Each stream's ``schema`` describes one server-sent event ({data, event, id, retry}), its data the JSON of
    the route's events or of an error, or [DONE]: how OpenAPI tools (schemathesis) read a text/event-stream."""
    document = (await api.get("/openapi.json")).json()
    stream = document["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]
    event_schema = {**stream["schema"], "components": document["components"]}
    data_schema = stream["schema"]["properties"]["data"]
    json_data = data_schema.get("else", data_schema)
    content_schema = {**json_data["contentSchema"], "components": document["components"]}
    assert json_data["contentMediaType"] == "application/json"
    reply = await api.post(path, {**body, "stream": True})
    events = reply.sse().data
    assert events
    for data in events:
        jsonschema.validate({"data": data, "event": "message"}, event_schema)
        if data == "[DONE]":
            assert data_schema["if"] == {"const": "[DONE]"}
        else:
            jsonschema.validate(json.loads(data), content_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"event": "message"}, event_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"unexpected": True}, content_schema)


async def test_chat_completion_shape(api, expected_answer) -> None:
    reply = await api.post("/v1/chat/completions", {"messages": [USER], "temperature": 0, "model": ""})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL_ID
    assert body["choices"][0]["message"] == {"role": "assistant", "content": expected_answer(SOURCE)}
    assert body["usage"]["completion_tokens"] == 24


async def test_chat_without_v1_prefix_and_with_text_plain_body(api, expected_answer) -> None:
    body = json.dumps({"messages": [USER], "temperature": 0})
    reply = await api.post("/chat/completions", data=body, headers={"Content-Type": "text/plain"})
    assert reply.status == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == expected_answer(SOURCE)


async def test_chat_stream_framing(api, expected_answer) -> None:
    reply = await api.post(
        "/v1/chat/completions", {"messages": [USER], "temperature": 0, "stream": True, "max_tokens": 6}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    # every event is "data: " + payload + blank line; the stream ends with [DONE]
    blocks = reply.text.split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
    assert all(block.startswith("data: ") for block in blocks[:-1])
    chunks = [json.loads(block[6:]) for block in blocks[:-2]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == MODEL_ID for chunk in chunks)
    assert all(len(chunk["choices"]) == 1 and chunk["choices"][0]["index"] == 0 for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    middle = chunks[1:-1]
    assert len(middle) == 6
    for chunk in middle:
        assert isinstance(chunk["choices"][0]["delta"]["content"], str)
        assert chunk["choices"][0]["finish_reason"] is None
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == expected_answer(SOURCE, 6)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert "usage" not in chunks[-1]


async def test_chat_stream_usage_chunk(api) -> None:
    reply = await api.post(
        "/v1/chat/completions",
        {"messages": [USER], "stream": True, "stream_options": {"include_usage": True}, "seed": 1},
    )
    chunks = reply.sse().json()
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 24
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_completions_route_and_stream(api, expected_answer) -> None:
    prompt = "<|im_start|>user\nさくら<|im_end|>\n<|im_start|>assistant\n"
    reply = await api.post("/v1/completions", {"prompt": [prompt], "max_tokens": 4, "temperature": 0})
    body = reply.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == expected_answer("さくら", 4)
    assert body["choices"][0]["finish_reason"] == "length"
    reply = await api.post("/v1/completions", {"prompt": prompt, "max_tokens": 4, "temperature": 0, "stream": True})
    events = reply.sse()
    assert events.data[-1] == "[DONE]"
    chunks = events.json()
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected_answer("さくら", 4)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_llamacpp_completion(api, expected_answer) -> None:
    reply = await api.post("/completion", {"prompt": "桜\n", "n_predict": 3, "temperature": 0, "cache_prompt": True})
    body = reply.json()
    assert body["content"] == expected_answer("桜", 3)
    assert body["model"] == MODEL_ID and body["stop"] is True
    assert body["tokens_predicted"] == 3 and body["tokens_evaluated"] == 2
    assert body["stop_type"] == "limit" and body["stopped_limit"] is True
    assert body["timings"]["predicted_n"] == 3


async def test_llamacpp_completion_stream_and_unlimited_n_predict(api, expected_answer) -> None:
    reply = await api.post("/completion", {"prompt": "桜\n", "n_predict": -1, "temperature": 0, "stream": True})
    events = reply.sse().json()
    assert all(event["stop"] is False for event in events[:-1])
    assert "".join(event["content"] for event in events) == expected_answer("桜")
    assert events[-1]["stop"] is True and events[-1]["stop_type"] == "eos"
    assert events[-1]["tokens_predicted"] == 24


async def test_llamacpp_completion_stream_that_reaches_n_predict_ends_as_limited(api) -> None:
    reply = await api.post("/completion", {"prompt": "桜\n", "n_predict": 3, "temperature": 0, "stream": True})
    final = reply.sse().json()[-1]
    assert final["stop"] is True and final["stop_type"] == "limit" and final["stopped_limit"] is True


async def test_legacy_generate(server, api, expected_answer) -> None:
    body = {
        "prompt": "<|im_start|>user\n花<|im_end|>\n<|im_start|>assistant\n",
        "max_new_tokens": 5,
        "do_sample": False,
        "temperature": 0.1,
        "top_p": 0.3,
        "top_k": 40,
        "repetition_penalty": 1.0,
        "num_beams": 1,
        "seed": -1,
        "typical_p": 1,
        "mirostat_mode": 0,
        "ban_eos_token": False,
    }
    reply = await api.post("/api/v1/generate", body)
    assert reply.json() == {"results": [{"text": expected_answer("花", 5), "new_token": 5}]}
    params = server.engine.calls[-1][1]
    assert params.do_sample is False and params.seed is None and params.max_tokens == 5


async def test_legacy_stream_generate(api, expected_answer) -> None:
    body = {"prompt": "<|im_start|>user\n花<|im_end|>\n<|im_start|>assistant\n", "do_sample": False}
    reply = await api.post("/api/v1/stream/generate", body)
    events = reply.sse().json()
    assert "".join(event["results"][0]["text"] for event in events) == expected_answer("花")
    assert sum(event["results"][0]["new_token"] for event in events) == 24


async def test_identity_routes(api) -> None:
    assert (await api.get("/v1/chat/model_info")).json() == {
        "model_name": "sakura-7b-qwen2.5",
        "model_version": "1.0",
        "model_quant": "iq4xs",
        "model_name_or_path": "models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf",
    }
    assert (await api.get("/api/core/version")).json() == {
        "name": "sakura-7b-qwen2.5",
        "version": "1.0",
        "quant": "iq4xs",
    }
    for path in ("/v1/models", "/models"):
        models = (await api.get(path)).json()
        assert models["object"] == "list"
        card = models["data"][0]
        assert card["id"] == MODEL_ID and card["object"] == "model"
        assert card["model_version"] == "1.0"
        assert "meta" not in card  # the reference engine cannot know llama-server's meta: never faked


async def test_alias_is_the_model_id_everywhere(start_server) -> None:
    from sakura_core.server.settings import ServerSettings

    server = await start_server(settings=ServerSettings(alias="sakura-v1.0-shared"))
    models = (await server.api.get("/v1/models")).json()
    assert models["data"][0]["id"] == "sakura-v1.0-shared"
    reply = await server.api.post("/v1/chat/completions", {"messages": [USER]})
    assert reply.json()["model"] == "sakura-v1.0-shared"


async def test_slots_and_health(server, api) -> None:
    slots = (await api.get("/slots")).json()
    assert [slot["id"] for slot in slots] == [0, 1, 2, 3]
    assert all(slot["state"] == 0 and slot["is_processing"] is False and slot["n_ctx"] == 4096 for slot in slots)
    health = await api.get("/health")
    assert health.status == 200
    assert health.json() == {"status": "ok", "slots_idle": 4, "slots_processing": 0}


async def test_messages_in_any_order_are_rendered_verbatim(server, api) -> None:
    messages = [
        {"role": "system", "content": "系统"},
        {"role": "assistant", "content": "前文"},
        {"role": "user", "content": "「テキスト」\\n2行目"},
    ]
    reply = await api.post("/v1/chat/completions", {"messages": messages})
    assert reply.status == 200
    prompt, params = server.engine.calls[-1]
    assert prompt == (
        "<|im_start|>system\n系统<|im_end|>\n"
        "<|im_start|>assistant\n前文<|im_end|>\n"
        "<|im_start|>user\n「テキスト」\\n2行目<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "<|im_end|>" in params.stop and "<|endoftext|>" in params.stop
    galtransl_order = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": [{"type": "text", "text": "u2"}]},
    ]
    reply = await api.post("/v1/chat/completions", {"messages": galtransl_order})
    assert reply.status == 200
    assert server.engine.calls[-1][0].endswith("<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\n")


async def test_sampling_parameters_reach_the_engine(server, api) -> None:
    body = {
        "messages": [USER],
        "max_completion_tokens": 100,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.1,
        "repetition_penalty": 1.1,
        "seed": 7,
        "stop": "。",
        "n": 1,
        "user": "someone",
        "logit_bias": {"1": 2},
        "reasoning_effort": "low",
        "some_future_field": {"x": 1},
    }
    assert (await api.post("/v1/chat/completions", body)).status == 200
    params = server.engine.calls[-1][1]
    assert params.max_tokens == 100
    assert (params.temperature, params.top_p, params.top_k) == (0.7, 0.9, 20)
    assert (params.frequency_penalty, params.presence_penalty, params.repetition_penalty) == (0.2, 0.1, 1.1)
    assert params.seed == 7 and params.do_sample is True
    assert params.stop[0] == "。" and "<|im_end|>" in params.stop


async def test_defaults_are_sakuras_recommended_decoding(server, api) -> None:
    assert (await api.post("/v1/chat/completions", {"messages": [USER]})).status == 200
    params = server.engine.calls[-1][1]
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k) == (512, 0.1, 0.3, 40)
    assert (params.repetition_penalty, params.frequency_penalty, params.seed) == (1.0, 0.0, None)


async def test_sakura_extras_from_query_nested_object_and_top_level(server, api) -> None:
    query = "?do_sample=false&num_beams=1&repetition_penalty=1.05&top_k=5"
    assert (await api.post("/v1/chat/completions" + query, {"messages": [USER]})).status == 200
    params = server.engine.calls[-1][1]
    assert (params.do_sample, params.repetition_penalty, params.top_k) == (False, 1.05, 5)
    body = {"messages": [USER], "extra_query": {"do_sample": True, "repetition_penalty": 1.2, "top_k": 9}}
    assert (await api.post("/v1/chat/completions" + query, body)).status == 200
    params = server.engine.calls[-1][1]
    assert (params.do_sample, params.repetition_penalty, params.top_k) == (True, 1.2, 9)
    body = {"messages": [USER], "top_k": 11, "extra_query": {"top_k": 9}}
    assert (await api.post("/v1/chat/completions" + query, body)).status == 200
    assert server.engine.calls[-1][1].top_k == 11


async def test_max_tokens_is_lowered_to_what_the_context_leaves(start_server) -> None:
    server = await start_server(n_ctx=100, answer_length=500)
    prompt = "x" * 90
    reply = await server.api.post("/v1/completions", {"prompt": prompt, "max_tokens": 50})
    body = reply.json()
    assert server.engine.calls[-1][1].max_tokens == 10
    assert body["usage"]["completion_tokens"] == 10 and body["choices"][0]["finish_reason"] == "length"


async def test_special_tokens_stop_the_output(start_server) -> None:
    server = await start_server()
    # the reference engine echoes the prompt's last line: the format's "<|endoftext|>" ends the answer, unseen
    reply = await server.api.post("/v1/completions", {"prompt": "xy<|endoftext|>z\n", "temperature": 0})
    body = reply.json()
    assert body["choices"][0]["text"] == "xy"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == len("xy<|endoftext|>")


async def test_one_log_line_per_request_and_prompts_only_at_debug(api, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sakura_core.server")
    await api.post("/v1/chat/completions", {"messages": [USER], "max_tokens": 5})
    access = [r.getMessage() for r in caplog.records if r.name == "sakura_core.server.access"]
    assert len(access) == 1
    line = access[0]
    assert line.startswith("POST /v1/chat/completions 200 ")
    assert "completion=5" in line and "length" in line and "tok/s" in line
    assert "prompt=" in line and re.search(r"\d+\.\d{3}s", line)
    assert SOURCE not in caplog.text
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="sakura_core")  # the model's generation path logs prompts
    await api.post("/v1/chat/completions", {"messages": [USER], "max_tokens": 5, "stream": True})
    assert SOURCE in caplog.text  # --log-level debug adds prompts
    assert any("stream" in r.getMessage() for r in caplog.records if r.name == "sakura_core.server.access")


async def test_v08_model_renders_baichuan_turns(start_server) -> None:
    server = await start_server(model="sakura-13b-lnovel-v0.8-Q4_K_M.gguf")
    messages = [{"role": "system", "content": "dropped"}, {"role": "user", "content": "将下面的日文文本翻译成中文：猫"}]
    reply = await server.api.post("/v1/chat/completions", {"messages": messages, "max_tokens": 3})
    assert reply.status == 200
    assert reply.json()["model"] == "sakura-13b-lnovel-v0.8-Q4_K_M"
    prompt, params = server.engine.calls[-1]
    assert prompt == "<reserved_106>将下面的日文文本翻译成中文：猫<reserved_107>"
    assert "</s>" in params.stop


class GlossaryPlugin:
    """A before_generate hook that rewrites the prompt, as a glossary plugin would."""

    @hookimpl
    def before_generate(self, request, model) -> None:
        request.prompt = request.prompt.replace("こんにちは", "こんばんは")
        request.params.max_tokens = min(request.params.max_tokens, 4)


async def test_generation_goes_through_the_plugin_hooks(start_server, expected_answer) -> None:
    server = await start_server(plugins=(("glossary", GlossaryPlugin()),))
    reply = await server.api.post("/v1/chat/completions", {"messages": [USER], "temperature": 0})
    prompt, params = server.engine.calls[-1]
    assert "こんばんは" in prompt and "こんにちは" not in prompt
    assert params.max_tokens == 4
    assert reply.json()["choices"][0]["message"]["content"] == expected_answer(SOURCE.replace("にち", "ばん"), 4)
