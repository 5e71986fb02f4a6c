"""Test support for the ollama engine: a local Ollama-API server (``api_server``), the real test server
(``real_server``), and small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry

if TYPE_CHECKING:
    from sakura_core.types import Delta, SamplingParams
    from sakura_ollama.engine import OllamaEngine

#: ``await make_engine(server_or_url, model, **options)``: the tests' fixture that loads an engine.
EngineFactory = Callable[..., Awaitable["OllamaEngine"]]


def chatml(text: str) -> str:
    """A Sakura v1.0 style raw prompt asking to translate ``text``."""
    return f"<|im_start|>user\n将下面的日文文本翻译成中文：{text}<|im_end|>\n<|im_start|>assistant\n"


async def collect(engine: OllamaEngine, prompt: str, params: SamplingParams) -> list[Delta]:
    """Every delta of one generation as the server sees it: through the core's rules around the engine."""
    assert engine.model_info is not None, "load the engine first"
    runner = LoadedModel(engine, PluginRegistry.create(entry_points=False), engine.model_info).runner
    prompt_tokens = await runner.count_tokens(prompt)
    return [delta async for delta in runner.stream(prompt, params, prompt_tokens=prompt_tokens)]


__all__ = ["EngineFactory", "chatml", "collect"]
