"""The sakura plugin module (entry point ``vllm`` in group ``sakura``): registers the vllm engine.

Importing it is cheap: vLLM itself is imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from sakura_core.engine import Engine
from sakura_core.hookspecs import hookimpl
from sakura_vllm.engine import VllmEngine


@hookimpl
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register the vllm engine."""
    register(VllmEngine)
