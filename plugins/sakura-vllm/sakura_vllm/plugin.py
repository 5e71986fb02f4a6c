"""The sakura plugin module (entry point ``vllm`` in group ``sakura``): registers the vllm engine.

Importing it is cheap: vLLM itself is imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sakura_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from sakura_core.engine import Engine


@hookimpl
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register the vllm engine (imported here: other sakura commands do not pay for it)."""
    from sakura_vllm.engine import VllmEngine

    register(VllmEngine)
