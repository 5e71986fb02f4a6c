"""The prompt cache's figures reach /metrics, and they account for every prompt token the server was sent."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.testing.metrics import metric_value

GLOSSARY = "\n".join(f"用語{i}->术语{i}" for i in range(40))


def chat(line: str, glossary: str) -> dict[str, object]:
    messages = [{"role": "system", "content": glossary}, {"role": "user", "content": line}]
    return {"messages": messages, "max_tokens": 4, "temperature": 0}


async def test_prompt_tokens_by_where_they_came_from_add_up_to_the_prompts(open_engine: Any) -> None:
    engine = await open_engine(n_parallel=1, n_ctx=1024, cache_ram=8)
    server = TestServer(create_app(engine, PluginRegistry.create(entry_points=False), engine.model_info))
    await server.start_server()
    prompt_tokens = 0
    try:
        async with aiohttp.ClientSession() as session:
            # the same glossary twice (kept in the slot), another one (the first saved to host memory), the first
            # again (restored)
            for line, glossary in (("一", GLOSSARY), ("二", GLOSSARY), ("三", GLOSSARY[::-1]), ("四", GLOSSARY)):
                url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
                async with session.post(url, json=chat(line, glossary)) as reply:
                    assert reply.status == 200
                    prompt_tokens += (await reply.json())["usage"]["prompt_tokens"]
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as reply:
                text = await reply.text()
    finally:
        await server.close()
    where = ("decoded", "kept", "shared", "restored")
    counted = {w: metric_value(text, f"sakura_engine_prompt_tokens_{w}_total") for w in where}
    assert sum(counted.values()) == prompt_tokens, counted
    assert counted["kept"] > 0 and counted["restored"] > 0, counted
    assert metric_value(text, "sakura_engine_host_cache_hits_total") >= 1
    assert metric_value(text, "sakura_engine_host_cache_limit_bytes") == 8 * 1024 * 1024
    assert "# TYPE sakura_engine_host_cache_bytes gauge" in text


async def test_decode_steps_and_time_inside_llama_cpp_are_counted_with_or_without_the_prompt_cache(
    open_engine: Any,
) -> None:
    for cache_prompt in (True, False):
        engine = await open_engine(n_ctx=1024, cache_prompt=cache_prompt)
        server = TestServer(create_app(engine, PluginRegistry.create(entry_points=False), engine.model_info))
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{server.port}"
                async with session.get(f"{url}/metrics") as reply:
                    before = await reply.text()
                async with session.post(f"{url}/v1/chat/completions", json=chat("一", GLOSSARY)) as reply:
                    assert reply.status == 200
                    completion_tokens = (await reply.json())["usage"]["completion_tokens"]
                async with session.get(f"{url}/metrics") as reply:
                    after = await reply.text()
        finally:
            await server.close()
        steps, seconds = (
            metric_value(after, name) - metric_value(before, name)
            for name in ("sakura_engine_decode_steps_total", "sakura_engine_decode_seconds_total")
        )
        # every token but the last needs a step of its own, and the prompt at least one more (64-token batches)
        assert steps >= completion_tokens, (cache_prompt, steps, completion_tokens)
        assert 0 < seconds < 60, cache_prompt
        assert ("sakura_engine_prompt_tokens_decoded_total" in after) is cache_prompt
