"""Hook specifications: the ways a plugin takes part in sakura.

A plugin is a module with functions decorated with ``@hookimpl`` whose names match the specifications below,
registered through the ``sakura`` entry-point group. Implement only the hooks you need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from sakura_core.engine import Engine
    from sakura_core.prompts import PromptFormat
    from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo

hookspec = pluggy.HookspecMarker("sakura")
hookimpl = pluggy.HookimplMarker("sakura")


@hookspec
def register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register engine classes.

    Call ``register(EngineClass)`` once per engine the plugin provides. The class's ``name`` is what users pass
    to ``sakura run --engine``; its ``Options`` model becomes the engine's own command-line options, shown under
    the engine's name in ``sakura run --engine NAME --help``. Import the engine class inside this function, not
    at the top of the plugin module: every ``sakura`` command imports every plugin module, and only commands that
    need engines call this hook. Never import the backend library here.

    A class that is no complete engine (abstract methods left, no ``name``) or whose options are spelled like one
    of ``sakura run``'s own is not registered: ``sakura engines`` and ``sakura run`` report it in one line.

    Example::

        @hookimpl
        def register_engines(register):
            from my_plugin.engine import MyEngine

            register(MyEngine)
    """


@hookspec
def register_prompt_formats(register: Callable[[PromptFormat], None]) -> None:
    """Register prompt formats: how chat messages become a raw prompt for a family of models.

    Call ``register(PromptFormat(...))`` for each format. Sakura's own formats (v0.8, v0.9, v0.10, v1.0,
    GalTransl) are registered by a built-in plugin through this same hook, so a new model version can ship as a
    plugin without a sakura release. A format registered later under an existing name replaces it.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``sakura`` command-line tool.

    ``cli`` is the top-level click group; decorate new commands with ``@cli.command()``, or add one with
    ``cli.add_command(command)``. Every ``sakura`` invocation (``sakura --help`` too) calls this hook, so a command
    whose module imports anything heavy is better added lazily: ``cli.add_lazy_command("name",
    "my_plugin.cli:command", "One line for sakura --help")`` imports ``my_plugin.cli`` only when the command runs.
    """


@hookspec
def register_run_options(register: Callable[[type[BaseModel], str], None]) -> None:
    """Add options to ``sakura run``, whatever the engine (pytest's ``pytest_addoption``, for sakura).

    Call ``register(OptionsModel, heading)`` with a pydantic model. Each field becomes a ``sakura run`` option
    spelled like an engine option (``replica_cpus`` becomes ``--replica-cpus``, a ``bool`` field a ``--x/--no-x``
    flag, the description the help text), listed under ``heading`` in ``sakura run --help``. What the user gives
    is validated into the model (a validation error is a one-line usage error naming the option) and handed to
    ``host_engine`` in ``run_options[OptionsModel]``. A spelling that the core's options, the chosen engine's or
    an earlier plugin's already use is left out: choose names that say what they belong to. Give every field a
    default, so that ``sakura run`` works as before when the user gives none of them. Runs on every
    ``sakura run``, ``--help`` included: import nothing heavy.

    Example::

        @hookimpl
        def register_run_options(register):
            register(ReplicaOptions, "Replicas (sakura-replicas)")
    """


@hookspec(firstresult=True)
def host_engine(engine: Engine, run_options: dict[type[BaseModel], BaseModel]) -> Engine | None:
    """Host the engine somewhere else than in this process: return an engine that stands in for it.

    Called once by ``sakura run``, after the chosen engine is constructed with the user's engine options and
    before it loads anything. ``run_options`` maps each model registered with ``register_run_options`` to what
    the user gave. Return ``None`` to leave the engine where it is (and return ``None`` whenever your own options
    were not given: without them ``sakura run`` must behave exactly as if your plugin were not installed).
    Otherwise return an ``Engine`` that the server uses instead: it loads, counts, generates and closes through
    the stand-in only, so the stand-in honours the whole engine contract (``parallelism`` is what the server
    admits at once; run the conformance kit on it). ``type(engine)`` and ``engine.options`` are what a stand-in
    needs to build the real engine elsewhere. The first plugin that returns an engine wins. Import heavy
    libraries in the stand-in's ``load``, not here.

    Example::

        @hookimpl
        def host_engine(engine, run_options):
            options = run_options[ReplicaOptions]
            if options.replicas is None:
                return None
            return ReplicatedEngine(type(engine), engine.options, options.replicas)
    """


@hookspec
def before_generate(request: GenerationRequest, model: ModelInfo) -> None:
    """Take part in a generation before it reaches the engine.

    Called for every generation, in plugin registration order (last registered first). ``request.prompt`` is
    the rendered raw prompt and ``request.params`` the sampling parameters; modify them in place to rewrite the
    prompt (add a glossary, say) or adjust sampling. ``request.messages`` holds the chat messages the prompt
    came from, when there were any. Return nothing.
    """


@hookspec
def after_generate(request: GenerationRequest, result: GenerationResult, model: ModelInfo) -> None:
    """Observe a finished generation: its text, token counts, finish reason and timing.

    Called once per generation, after the last delta, also when the client disconnected
    (``result.finish_reason == "cancelled"``) or the engine failed (``"error"``). Must be quick: it runs on the
    server's event loop. Return nothing.
    """
