"""The sakura plugin module (entry point ``llamacpp`` in group ``sakura``): registers the llamacpp engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sakura_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from sakura_core.engine import Engine


@hookimpl
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register the llamacpp engine (imported here: other sakura commands do not pay for it)."""
    from sakura_llamacpp.engine import LlamaCppEngine

    register(LlamaCppEngine)
