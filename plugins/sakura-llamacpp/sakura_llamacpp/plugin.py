"""The sakura plugin module (entry point ``llamacpp`` in group ``sakura``): registers the llamacpp engine."""

from __future__ import annotations

from collections.abc import Callable

from sakura_core.engine import Engine
from sakura_core.hookspecs import hookimpl
from sakura_llamacpp.engine import LlamaCppEngine


@hookimpl
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register the llamacpp engine."""
    register(LlamaCppEngine)
