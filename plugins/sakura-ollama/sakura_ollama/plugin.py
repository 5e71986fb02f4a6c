"""The sakura plugin module (entry point ``ollama`` in group ``sakura``): registers the ollama engine."""

from __future__ import annotations

from collections.abc import Callable

from sakura_core.engine import Engine
from sakura_core.hookspecs import hookimpl
from sakura_ollama.engine import OllamaEngine


@hookimpl
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register the ollama engine."""
    register(OllamaEngine)
