"""Several models behind one server: a request's ``model`` picks one by id or alias, the rest go to the default."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from sakura_echo.scripted import ReferenceOptions

from sakura_core.loaded_model import LoadedModel
from sakura_core.server import create_app
from sakura_core.server.http.connections import GuardedSite
from sakura_core.server.runner import RUNNER_OPTIONS
from sakura_core.server.settings import ServerSettings

from .conftest import RecordingEngine, make_registry

V10 = "models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf"
V15 = "models/sakura-14b-qwen3-v1.5-q4km.gguf"


async def _two_models() -> tuple[str, RecordingEngine, RecordingEngine, web.AppRunner]:
    registry = make_registry()
    first = RecordingEngine(ReferenceOptions())
    second = RecordingEngine(ReferenceOptions())
    first_info = await first.load(V10)
    second_model = LoadedModel(second, registry, await second.load(V15))
    app = create_app(first, registry, first_info, ServerSettings(), others=[(second_model, ["v15"])])
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    site = GuardedSite(runner, ServerSettings(), host="127.0.0.1", port=0)
    await site.start()
    return f"http://127.0.0.1:{site.port}", first, second, runner


def _chat(model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 8}
    if model is not None:
        body["model"] = model
    return body


async def test_each_name_goes_to_its_model_and_the_rest_to_the_default() -> None:
    url, first, second, runner = await _two_models()
    try:
        async with aiohttp.ClientSession() as session:
            cases = [
                ("v15", "sakura-14b-qwen3-v1.5-q4km", second),
                ("sakura-14b-qwen3-v1.5-q4km", "sakura-14b-qwen3-v1.5-q4km", second),
                ("sakura-7b-qwen2.5-v1.0-iq4xs", "sakura-7b-qwen2.5-v1.0-iq4xs", first),
                ("", "sakura-7b-qwen2.5-v1.0-iq4xs", first),
                ("gpt-3.5-turbo", "sakura-7b-qwen2.5-v1.0-iq4xs", first),
                (None, "sakura-7b-qwen2.5-v1.0-iq4xs", first),
            ]
            for name, served_id, engine in cases:
                before = len(engine.calls)
                async with session.post(url + "/v1/chat/completions", json=_chat(name)) as response:
                    assert response.status == 200, await response.text()
                    assert (await response.json())["model"] == served_id
                assert len(engine.calls) == before + 1, name
            async with session.post(url + "/v1/chat/completions", json={**_chat("v15"), "stream": True}) as response:
                text = await response.text()
            assert '"model":"sakura-14b-qwen3-v1.5-q4km"' in text.replace(" ", "")
            async with session.get(url + "/v1/models") as response:
                listed = await response.json()
            assert [card["id"] for card in listed["data"]] == [
                "sakura-7b-qwen2.5-v1.0-iq4xs",
                "sakura-14b-qwen3-v1.5-q4km",
            ]
            assert [card["model_version"] for card in listed["data"]] == ["1.0", "1.5"]
    finally:
        await runner.cleanup()


async def test_each_model_renders_with_its_own_prompt_format() -> None:
    url, first, second, runner = await _two_models()
    try:
        async with aiohttp.ClientSession() as session:
            for name in ("sakura-7b-qwen2.5-v1.0-iq4xs", "v15"):
                async with session.post(url + "/v1/chat/completions", json=_chat(name)) as response:
                    assert response.status == 200
        v10_prompt, v15_prompt = first.calls[-1][0], second.calls[-1][0]
        assert v10_prompt.endswith("<|im_start|>assistant\n")
        assert "<think>" not in v10_prompt
        assert v15_prompt != v10_prompt
        assert "<think>" in v15_prompt  # thinking off, as the v1.5 model's own template renders it
    finally:
        await runner.cleanup()
