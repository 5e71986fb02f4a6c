"""The reusable engine-loading command: a click command whose options grow by the chosen engine's own.

``sakura run`` is one; plugins' commands that load an engine (``sakura translate``) are others. What one invocation
of ``sakura`` shares between its commands (the plugin registry, the chosen engine and its options) is a ``CliState``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from sakura_core.plugins import EngineCheck, PluginRegistry, RegisteredEngine, RunOptionGroup, UnknownEngineError

if TYPE_CHECKING:  # imported when a command parses its options: `sakura --help` imports no pydantic
    from sakura_core.cli_options import EngineOption

DEFAULT_ENGINE = "llamacpp"
#: The original server's engine switches, kept so its command lines still work.
LEGACY_ENGINE_FLAGS = {"--llama_cpp": "llamacpp", "--llama-cpp": "llamacpp", "--vllm": "vllm", "--ollama": "ollama"}


class OneLineUsageError(click.ClickException):
    """A usage mistake reported as a single ``Error: ...`` line, exit code 2."""

    exit_code = 2


@dataclass
class CliState:
    """What one invocation of ``sakura`` shares between its commands."""

    registry: PluginRegistry
    engine_options: list[EngineOption] = field(default_factory=list)
    #: Options plugins add to ``sakura run`` (``register_run_options``), by group.
    run_options: list[tuple[RunOptionGroup, list[EngineOption]]] = field(default_factory=list)
    engine: RegisteredEngine | None = None
    engine_error: str | None = None
    #: Checks each engine class beyond the contract (``sakura`` sets one that refuses options spelled like
    #: ``sakura run``'s own); set it before the engines are first asked for.
    engine_check: EngineCheck | None = None
    _engines: dict[str, RegisteredEngine] | None = None

    def engines(self) -> dict[str, RegisteredEngine]:
        """The usable engines; plugins that failed (and engines whose options collide with ``sakura run``'s) are
        in ``registry.failures``."""
        if self._engines is None:
            self._engines = self.registry.engines(check=self.engine_check)
        return self._engines

    def choose_engine(self, name: str) -> RegisteredEngine:
        """The engine called ``name``, or UnknownEngineError with one line saying why not."""
        engines = self.engines()
        if name in engines:
            return engines[name]
        return self.registry.engine(name, check=self.engine_check)  # raises, saying why


def cli_state(ctx: click.Context) -> CliState:
    """This invocation's CliState (made, with every installed plugin, when the caller passed none)."""
    state = ctx.find_object(CliState)
    if state is None:
        state = CliState(PluginRegistry.create())
        ctx.obj = state
    return state


def peek_engine_name(args: list[str]) -> str:
    """The engine named on a ``sakura run`` command line, before click parses it."""
    name = DEFAULT_ENGINE
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--engine", "-e") and index + 1 < len(args):
            name = args[index + 1]
        elif arg.startswith("--engine="):
            name = arg.split("=", 1)[1]
        elif arg in LEGACY_ENGINE_FLAGS:
            name = LEGACY_ENGINE_FLAGS[arg]
    return name


class EngineCommand(click.Command):
    """A command that loads an engine (``sakura run``, ``sakura translate``): its options grow by the chosen
    engine's own options, shown under the engine's name, and by the options plugins add to ``sakura run``.

    Plugins' commands that load an engine use this class, or a subclass that overrides ``engine_name`` to say
    when the command line asks for no engine at all.
    """

    #: True when the options plugins add to ``sakura run`` (``register_run_options``) apply to this command; a
    #: subclass that does not pass its engine through ``host_engine`` sets it False.
    takes_run_options: bool = True

    def engine_name(self, args: list[str]) -> str | None:
        """The engine the command line asks for, before click parses it; None for none (no engine options)."""
        return peek_engine_name(args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from sakura_core.cli_options import ENGINE_PARAM_PREFIX, PLUGIN_PARAM_PREFIX, click_options_for, spellings

        state = cli_state(ctx)
        # the command object outlives one invocation (tests, embedding): start again from the core's options
        core_params: list[click.Parameter] = self.__dict__.setdefault(
            "_core_params",
            [p for p in self.params if not (p.name or "").startswith((ENGINE_PARAM_PREFIX, PLUGIN_PARAM_PREFIX))],
        )
        self.params = list(core_params)
        name = self.engine_name(args)
        if name is None:
            return super().parse_args(ctx, args)
        try:
            state.engine = state.choose_engine(name)
        except UnknownEngineError as exc:
            state.engine_error = str(exc)
            if not ctx.resilient_parsing and not set(args) & set(ctx.help_option_names):
                raise OneLineUsageError(state.engine_error) from None
        else:
            # a hidden legacy spelling (--trust_remote_code) gives way to an engine option that claims it
            taken = {spelling for p in core_params if not getattr(p, "hidden", False) for spelling in spellings(p)}
            state.engine_options = click_options_for(state.engine.engine_class.Options, taken)
            claimed = {opt for option in state.engine_options for opt in spellings(option.option)}
            self.params = [p for p in self.params if not (getattr(p, "hidden", False) and claimed & spellings(p))]
            self.params.extend(option.option for option in state.engine_options)
        if self.takes_run_options:
            self._add_run_options(state)
        return super().parse_args(ctx, args)

    def _add_run_options(self, state: CliState) -> None:
        """The options plugins add to every ``sakura run`` (``register_run_options``)."""
        from sakura_core.cli_options import PLUGIN_PARAM_PREFIX, click_options_for, spellings

        state.run_options = []
        for index, group in enumerate(state.registry.run_options()):
            taken = {opt for param in self.params if not getattr(param, "hidden", False) for opt in spellings(param)}
            options = click_options_for(group.model, taken, prefix=f"{PLUGIN_PARAM_PREFIX}{index}__")
            state.run_options.append((group, options))
            self.params.extend(option.option for option in options)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        state = cli_state(ctx)
        engine_params = {option.option.name for option in state.engine_options}
        engine_params |= {option.option.name for _, options in state.run_options for option in options}
        core = [
            p.get_help_record(ctx)
            for p in self.get_params(ctx)
            if isinstance(p, click.Option) and p.name not in engine_params
        ]
        with formatter.section("Options"):
            formatter.write_dl([record for record in core if record is not None])
        for group, options in state.run_options:
            with formatter.section(group.heading):
                formatter.write_dl([r for r in (o.option.get_help_record(ctx) for o in options) if r is not None])
        if state.engine is not None:
            engine = state.engine
            source = f", from {engine.distribution} {engine.version}" if engine.distribution else ""
            with formatter.section(f"Engine options: {engine.engine_class.name}{source}"):
                records = [o.option.get_help_record(ctx) for o in state.engine_options]
                formatter.write_dl([r for r in records if r is not None] or [("(none)", "")])
        elif state.engine_error:
            with formatter.section("Engine options"):
                formatter.write_text(state.engine_error)
        others = sorted(set(state.engines()) - {state.engine.engine_class.name if state.engine else ""})
        if others:
            label = "Other engines" if state.engine is not None else "Engines"
            formatter.write_paragraph()
            formatter.write_text(
                f"{label}: {', '.join(others)}; see their options with: {ctx.command_path} --engine NAME --help"
            )
