"""Built-in plugin: registers Sakura's own prompt formats through the same hook third parties use."""

from __future__ import annotations

from collections.abc import Callable

from sakura_core.hookspecs import hookimpl
from sakura_core.prompts import SAKURA_FORMATS, PromptFormat


@hookimpl
def register_prompt_formats(register: Callable[[PromptFormat], None]) -> None:
    for prompt_format in SAKURA_FORMATS:
        register(prompt_format)
