"""``/translate/info`` and ``/translate`` against the real llama.cpp engine on a tiny model."""

from __future__ import annotations

from typing import Any

GLOSSARY = [
    {"src": "先輩", "dst": "前辈", "info": "称呼"},
    {"src": "佐藤", "dst": "佐藤"},
    {"src": "魔王", "dst": "魔王"},
]


async def test_info_names_the_model_its_format_presets_and_formats(web_server: Any) -> None:
    server = await web_server()
    status, info = await server.json("GET", "/translate/info")
    assert status == 200
    assert (info["model"], info["prompt_format"], info["parallelism"]) == ("sakura-tiny-qwen2-v1.0-f32", "v1.0", 2)
    presets = {preset["id"]: preset for preset in info["presets"]}
    assert presets["sakura"]["sampling"] == {"temperature": 0.1, "top_p": 0.3, "frequency_penalty": 0.0}
    assert presets["anti-degeneration"]["sampling"]["frequency_penalty"] > 0
    assert all(preset["label_zh"] and preset["label_en"] for preset in info["presets"])
    extensions = {suffix for entry in info["file_formats"] for suffix in entry["extensions"]}
    assert {".txt", ".epub", ".srt", ".ass", ".vtt", ".json"} <= extensions
    assert info["limits"]["max_upload_bytes"] > 0


async def test_translate_streams_and_sends_only_the_glossary_entries_that_occur(web_server: Any) -> None:
    server = await web_server()
    body: dict[str, Any] = {
        "text": "おはよう、先輩。\n佐藤です。",
        "glossary": GLOSSARY,
        "context": "昨天下雨了。",
        "sampling": {"max_tokens": 8, "do_sample": False},
    }
    async with server.request("POST", "/translate", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await server.events(response)
    deltas = [event["delta"] for event in events if "delta" in event]
    done = events[-1]
    assert done["done"] is True and done["finish_reason"] in ("stop", "length")
    assert done["text"] == "".join(deltas) and deltas
    assert 0 < done["usage"]["completion_tokens"] <= 8 and done["usage"]["prompt_tokens"] > 0
    (prompt,) = server.recorder.prompts
    assert "先輩->前辈 #称呼" in prompt and "佐藤->佐藤" in prompt and "魔王" not in prompt  # v1.0's glossary lines
    assert "昨天下雨了。" in prompt and prompt.startswith("<|im_start|>system")
    # stream false: one JSON answer, the same greedy text
    status, answer = await server.json("POST", "/translate", json={**body, "stream": False})
    assert status == 200 and answer["text"] == done["text"] and answer["finish_reason"] == done["finish_reason"]


async def test_translate_refuses_bad_requests_with_json(web_server: Any) -> None:
    server = await web_server()
    for body, param in (
        ({"text": ""}, "text"),
        ({"text": "あ", "preset": "nope"}, "preset"),
        ({"text": "あ", "sampling": {"temperature": 9}}, "sampling.temperature"),
        ({"text": "あ" * 9000}, "text"),
    ):
        status, error = await server.json("POST", "/translate", json=body)
        assert status == 400, body
        assert error["error"]["param"] == param and error["error"]["message"]
