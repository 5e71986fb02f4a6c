"""Test support for the ollama engine: a local Ollama-API server (``api_server``), the real test server
(``real_server``), and small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sakura_ollama.engine import OllamaEngine

#: ``await make_engine(server_or_url, model, **options)``: the tests' fixture that loads an engine.
EngineFactory = Callable[..., Awaitable["OllamaEngine"]]


def chatml(text: str) -> str:
    """A Sakura v1.0 style raw prompt asking to translate ``text``."""
    return f"<|im_start|>user\n将下面的日文文本翻译成中文：{text}<|im_end|>\n<|im_start|>assistant\n"


__all__ = ["EngineFactory", "chatml"]
