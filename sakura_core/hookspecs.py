"""Hook specifications: the ways a plugin takes part in sakura.

A plugin is a module with functions decorated with ``@hookimpl`` whose names match the specifications below,
registered through the ``sakura`` entry-point group. Implement only the hooks you need. Each hook's rules and a
complete example are in docs/plugins.md ("The hooks"), one section per hook: the docstrings here say only what a
hook is for, so that the two cannot drift apart (tests/test_hook_docs.py checks that every hook is documented).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from sakura_core.engine import Engine
    from sakura_core.prompts import PromptFormat
    from sakura_core.server.extension import ServerExtension
    from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo

hookspec = pluggy.HookspecMarker("sakura")
hookimpl = pluggy.HookimplMarker("sakura")


@hookspec
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register engine classes: call ``register(EngineClass)`` once per engine the plugin provides."""


@hookspec
def register_prompt_formats(register: Callable[[PromptFormat], None]) -> None:
    """Register prompt formats, as Sakura's own (v0.8, v0.9, v0.10, v1.0, v1.5, GalTransl) are: ``register(fmt)``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``sakura`` command-line tool, on its top-level click group ``cli``."""


@hookspec
def register_run_options(register: Callable[[type[BaseModel], str], None]) -> None:
    """Add options to ``sakura run`` for every engine: call ``register(OptionsModel, heading)``."""


@hookspec
def register_server_extensions(
    register: Callable[[ServerExtension], None], run_options: Mapping[type[BaseModel], BaseModel]
) -> None:
    """Add routes, static files and background work to the server ``sakura run`` starts: ``register(extension)``."""


@hookspec(firstresult=True)
def host_engine(engine: Engine, run_options: dict[type[BaseModel], BaseModel]) -> Engine | None:
    """Host the engine elsewhere than in this process: return an engine that stands in for it, or None."""


@hookspec
def before_generate(request: GenerationRequest, model: ModelInfo) -> None:
    """Take part in a generation before it reaches the engine: modify ``request`` in place."""


@hookspec
def after_generate(request: GenerationRequest, result: GenerationResult, model: ModelInfo) -> None:
    """Observe a finished (or cancelled, or failed) generation: its text, token counts, finish reason and timing."""
