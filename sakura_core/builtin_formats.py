"""Built-in plugin: registers Sakura's own prompt formats through the same hook third parties use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sakura_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from sakura_core.prompts import PromptFormat


@hookimpl
def register_prompt_formats(register: Callable[[PromptFormat], None]) -> None:
    """Sakura's own formats: v0.8, v0.9, v0.10, v1.0, v1.5 and GalTransl."""
    from sakura_core.prompts import SAKURA_FORMATS  # imported when formats are asked for, not at start-up

    for prompt_format in SAKURA_FORMATS:
        register(prompt_format)
