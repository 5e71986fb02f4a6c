"""The ``sakura`` command-line tool."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sakura_core import __version__
from sakura_core.engine_command import (
    DEFAULT_ENGINE,
    CliState,
    EngineCommand,
    OneLineUsageError,
    cli_state,
)
from sakura_core.plugins import CHECKOUT, KNOWN_ENGINE_INSTALLS, LOAD_PLUGINS_ENV, PluginRegistry

if TYPE_CHECKING:  # each command imports what it needs: `sakura --help` stays fast
    from pydantic import BaseModel

    from sakura_core.engine import Engine

DEFAULT_LISTEN = "127.0.0.1:8080"


def _state(ctx: click.Context) -> CliState:
    """This invocation's CliState, refusing engines whose options are spelled like ``sakura run``'s own."""
    state = cli_state(ctx)
    if state.engine_check is None:
        state.engine_check = option_collision
    return state


def core_spellings() -> set[str]:
    """Every spelling of ``sakura run``'s own options (hidden legacy spellings left out: engines may claim them)."""
    from sakura_core.cli_options import ENGINE_PARAM_PREFIX, PLUGIN_PARAM_PREFIX, spellings

    return {
        spelling
        for param in run.params
        if not (param.name or "").startswith((ENGINE_PARAM_PREFIX, PLUGIN_PARAM_PREFIX))
        and not getattr(param, "hidden", False)
        for spelling in spellings(param)
    }


def option_collision(engine_class: type[Engine]) -> str | None:
    """One line when one of the engine's options is spelled like one of ``sakura run``'s own, else None."""
    from sakura_core.cli_options import click_options_for, spellings

    taken = core_spellings()
    for option in click_options_for(engine_class.Options):
        clash = sorted(spellings(option.option) & taken)
        if clash:
            return (
                f"engine {engine_class.name!r}: its option {option.field_name!r} ({clash[0]}) collides with "
                f"`sakura run`'s own {clash[0]}; rename the field in {engine_class.Options.__qualname__}"
            )
    return None


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT`` → (host, port)."""
    host, port_text = "127.0.0.1", value
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.lstrip(":")
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--listen") from None
    if not 0 <= port <= 65535:
        raise click.BadParameter(f"port {port} is out of range", param_hint="--listen")
    return host, port


class SakuraGroup(click.Group):
    """The top-level group: plugins may add commands through the ``register_commands`` hook, directly
    (``cli.add_command``) or lazily (``cli.add_lazy_command``: imported only when the command runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commands_from: PluginRegistry | None = None
        self._builtin_commands: dict[str, click.Command] | None = None
        self._lazy: dict[str, tuple[str, str]] = {}

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        """Add the command ``target`` (``"package.module:command"``) under ``name``, imported only when it is run
        or its own help is asked for; ``sakura --help`` lists it with ``short_help``."""
        self._lazy[name] = (target, short_help)

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        """The commands of this invocation's plugins (the group object may serve several registries: tests)."""
        registry = _state(ctx).registry
        if self._commands_from is registry:
            return
        if self._builtin_commands is None:
            self._builtin_commands = dict(self.commands)
        self.commands = dict(self._builtin_commands)
        self._lazy = {}
        self._commands_from = registry
        registry.plugin_manager.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands(ctx)
        if cmd_name in self._lazy and cmd_name not in self.commands:
            import importlib

            target, _ = self._lazy[cmd_name]
            module, _, attribute = target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, with lazy commands' short help (their modules stay unimported)."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self._lazy and name not in self.commands:
                rows.append((name, self._lazy[name][1]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=SakuraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="sakura")
def cli() -> None:
    """sakura: serve SakuraLLM translation models over the Sakura / OpenAI-compatible API.

    \b
    Quick start (the default engine is llama.cpp):
      sakura run --model ./sakura-7b-qwen2.5-v1.0-iq4xs.gguf
    then point your translator at http://127.0.0.1:8080
    """


@cli.command(cls=EngineCommand, context_settings={"show_default": True})
@click.option("--engine", "-e", default=DEFAULT_ENGINE, metavar="NAME", help="Inference engine (see `sakura engines`).")
@click.option("--llama_cpp", "--llama-cpp", "legacy_engine", flag_value="llamacpp", hidden=True)
@click.option("--vllm", "legacy_engine", flag_value="vllm", hidden=True)
@click.option("--ollama", "legacy_engine", flag_value="ollama", hidden=True)
@click.option(
    "--model",
    "-m",
    "--model_name_or_path",
    "--model-name-or-path",
    "model",
    multiple=True,
    metavar="[ALIAS=][ENGINE:]PATH_OR_TAG",
    help="Model file, directory, Hugging Face repository or Ollama tag, depending on the engine. Repeat it to serve"
    " several models; a request's `model` (served id or ALIAS) picks one, others go to the default model. ENGINE:"
    " loads that one with another installed engine.",
)
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Serve every GGUF file and model folder in DIR too (after any --model), each loaded on demand.",
)
@click.option(
    "--default-model",
    metavar="NAME",
    help="The model for requests that name none or an unknown one, listed first (an ALIAS or a --model value;"
    " default: the first --model).",
)
@click.option(
    "--model-version",
    "--model_version",
    metavar="V",
    help="Sakura version (0.8, 0.9, 0.10, 1.0, 1.5, galtransl); overrides what the model's name or metadata says"
    " (of the default model, with several).",
)
@click.option(
    "--models-max",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Models loaded at once (several --model); past it the least recently used idle one is unloaded. 0: no bound.",
)
@click.option(
    "--models-ttl",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Unload a model (other than the default) idle this long; it loads again on its next request. 0: never.",
)
@click.option("--alias", "-a", metavar="ID", help="Served model id instead of the file name.")
@click.option("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="Address to serve on.")
@click.option("--host", metavar="HOST", help="Host to serve on (overrides --listen's host).")
@click.option("--port", type=int, metavar="PORT", help="Port to serve on (overrides --listen's port).")
@click.option("--auth", metavar="USER:PASS", help="Require HTTP Basic auth; `--auth :` turns auth off.")
@click.option("--no-auth", "--no_auth", "no_auth", is_flag=True, help="Never require auth, even on a public address.")
@click.option(
    "--api-key",
    "--api_key",
    "api_key",
    metavar="KEY",
    envvar="SAKURA_API_KEY",
    help="Require `Authorization: Bearer KEY` (env SAKURA_API_KEY).",
)
@click.option("--max-queue", type=click.IntRange(min=0), default=1024, help="Requests that may wait for a free slot.")
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=10.0,
    help="Seconds in-flight requests may finish after SIGINT/SIGTERM.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=1024,
    help="Open client connections past which new ones are refused at once (lowered to fit the open-file limit).",
)
@click.option(
    "--max-connections-per-client",
    type=click.IntRange(min=1),
    default=256,
    help="Open connections one client address may hold; past them its new ones are refused at once.",
)
@click.option(
    "--max-body-size",
    type=click.IntRange(min=1024),
    default=8 * 1024 * 1024,
    metavar="BYTES",
    help="Largest request body (413 above it; a smaller bound follows from the model's context).",
)
@click.option(
    "--max-header-size",
    type=click.IntRange(min=1024),
    default=32 * 1024,
    metavar="BYTES",
    help="Largest header block of one request (431 above it, before auth).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    help="Seconds a connection may take to send a request's headers.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    help="Seconds a request body may pause between two reads (408 past it).",
)
@click.option(
    "--send-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    help="Seconds a stream may wait for its client to read; past it the stream ends and its slot is freed.",
)
@click.option(
    "--body-deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    help="Seconds a whole request body may take to arrive, however steadily it comes (408 past it).",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    help="Seconds a generation may make no progress before /health answers 503 (the engine is wedged); 0: off.",
)
@click.option(
    "--keepalive-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    help="Seconds an idle keep-alive connection stays open between requests (a stream is never idle).",
)
@click.option(
    "--cors-origins",
    metavar="ORIGINS",
    help="Comma-separated origins allowed with credentials (cookies, cached Basic auth); other origins are then"
    " refused. Default: any origin, without credentials.",
)
@click.option("--self-check/--no-self-check", default=True, help="Translate やる気マンゴスキン at start as a check.")
@click.option(
    "--log-level",
    "--log_level",
    "log_level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Logging detail; debug also logs prompts.",
)
@click.option("--trust_remote_code", "--trust-remote-code", "legacy_trust_remote_code", is_flag=True, hidden=True)
@click.pass_context
def run(ctx: click.Context, **params: Any) -> None:
    """Load a model with an engine and serve the Sakura API."""
    from sakura_core.cli_options import build_options
    from sakura_core.engine import ModelLoadError

    state = _state(ctx)
    if state.engine is None:
        raise OneLineUsageError(state.engine_error or "no engine")
    for failure in state.registry.failures:
        click.echo(f"warning: {failure.describe()}", err=True)
    from sakura_core.format_choice import UnknownModelVersionError

    try:
        state.registry.check_model_version(params["model_version"])
    except UnknownModelVersionError as exc:
        raise OneLineUsageError(str(exc)) from None
    from sakura_core.model_specs import ModelSpecError, models_in_dir, order_with_default, parse_model_specs

    try:
        given = parse_model_specs(params["model"], state.engines())
        if params["models_dir"]:
            known = {Path(spec.source).resolve() for spec in given}
            given += [spec for spec in models_in_dir(params["models_dir"]) if Path(spec.source).resolve() not in known]
        if not given:
            raise ModelSpecError("Missing option '--model' / '-m': give a model to serve (or --models-dir DIR).")
        specs = order_with_default(given, params["default_model"])
    except ModelSpecError as exc:
        raise OneLineUsageError(str(exc)) from None
    options = build_options(state.engine.engine_class.Options, ctx, state.engine_options)
    settings = _server_settings(params).model_copy(update={"several_models": len(specs) > 1})
    _configure_logging(params["log_level"])
    engine_class = state.engine.engine_class

    def make_engine(name: str | None = None) -> Engine:
        """A new engine: ``--engine``'s with the options given, or another installed one with its defaults."""
        if name is None or name == engine_class.name:
            return _hosted(ctx, state, engine_class(options))  # type: ignore[arg-type]
        other = state.choose_engine(name).engine_class
        return other(other.Options())

    from pydantic import ValidationError

    first, others = specs[0], specs[1:]
    try:
        engine = make_engine(first.engine)
    except ValidationError as exc:
        raise OneLineUsageError(f"the {first.engine} engine needs options: {exc.errors()[0]['msg']}") from None
    import asyncio

    from sakura_core.server import serve  # the server (aiohttp) is imported only when serving

    try:
        asyncio.run(
            serve(
                settings,
                engine,
                state.registry,
                first.source,
                params["model_version"],
                others=others,
                make_engine=make_engine,
                first_aliases=(first.alias,) if first.alias else (),
                run_options=_run_options(ctx, state),
            )
        )
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"cannot listen on {settings.host}:{settings.port}: the address is in use; choose another with --listen"
            ) from None
        raise
    except KeyboardInterrupt:
        pass


def _run_options(ctx: click.Context, state: CliState) -> dict[type[BaseModel], BaseModel]:
    """The options plugins added to ``sakura run`` (``register_run_options``), as the user gave them."""
    from sakura_core.cli_options import build_options

    return {group.model: build_options(group.model, ctx, options) for group, options in state.run_options}


def _hosted(ctx: click.Context, state: CliState, engine: Engine) -> Engine:
    """``engine``, or the stand-in a plugin hosts it with elsewhere (``host_engine``) when the user asked for it."""
    if not state.run_options:
        return engine
    run_options = _run_options(ctx, state)
    stand_in: Engine | None = state.registry.plugin_manager.hook.host_engine(engine=engine, run_options=run_options)
    return engine if stand_in is None else stand_in


def _server_settings(params: dict[str, Any]) -> Any:
    from sakura_core.server.settings import ServerSettings

    host, port = parse_listen(params["listen"])
    host = params["host"] or host
    port = params["port"] if params["port"] is not None else port
    basic_auth: tuple[str, str] | None = None
    auth_disabled = params["no_auth"]
    if params["auth"] is not None:
        user, sep, password = params["auth"].partition(":")
        if not sep:
            raise click.BadParameter("expected USER:PASS", param_hint="--auth")
        if user or password:
            if params["no_auth"]:
                raise click.UsageError("--auth USER:PASS and --no-auth contradict each other")
            basic_auth = (user, password)
        else:
            auth_disabled = True
    if auth_disabled and params["api_key"]:
        raise click.UsageError("--api-key and --no-auth contradict each other")
    return ServerSettings(
        host=host,
        port=port,
        basic_auth=basic_auth,
        api_key=params["api_key"],
        auth_disabled=auth_disabled,
        alias=params["alias"],
        max_queue=params["max_queue"],
        max_connections=params["max_connections"],
        max_connections_per_client=params["max_connections_per_client"],
        max_body_bytes=params["max_body_size"],
        max_header_bytes=params["max_header_size"],
        header_timeout_seconds=params["header_timeout"],
        body_timeout_seconds=params["body_timeout"],
        body_deadline_seconds=params["body_deadline"],
        keepalive_timeout_seconds=params["keepalive_timeout"],
        send_timeout_seconds=params["send_timeout"],
        stall_timeout_seconds=params["stall_timeout"],
        cors_origins=parse_cors_origins(params["cors_origins"]),
        shutdown_grace_seconds=params["shutdown_grace"],
        self_check=params["self_check"],
        log_level=params["log_level"].lower(),
        models_max=params["models_max"],
        models_ttl_seconds=params["models_ttl"],
    )


def parse_cors_origins(value: str | None) -> tuple[str, ...]:
    """``--cors-origins``: ``https://a.example,http://localhost:5173`` → the origins, as browsers send them."""
    if value is None:
        return ()
    origins = tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest or origin == "*":
            raise click.BadParameter(
                f"{origin!r} is not an origin; give scheme://host[:port], e.g. https://books.fishhawk.top",
                param_hint="--cors-origins",
            )
    if not origins:
        raise click.BadParameter("give at least one origin", param_hint="--cors-origins")
    return origins


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def engines(ctx: click.Context, as_json: bool) -> None:
    """List installed engines, their distributions, and plugins that failed to load."""
    state = _state(ctx)
    registry = state.registry
    found = state.engines()
    left_out = sorted(name for name in KNOWN_ENGINE_INSTALLS if name not in found and name in registry.left_out)
    missing = sorted(name for name in KNOWN_ENGINE_INSTALLS if name not in found and name not in left_out)
    if as_json:
        payload = {
            "engines": [
                {
                    "name": name,
                    "description": entry.engine_class.description,
                    "plugin": entry.plugin,
                    "distribution": entry.distribution,
                    "version": entry.version,
                }
                for name, entry in sorted(found.items())
            ],
            "failed": [vars(failure) for failure in registry.failures],
            "not_loaded": left_out,
            "not_installed": [{"name": n, "install": KNOWN_ENGINE_INSTALLS[n]} for n in missing],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    if found:
        rows = [
            (
                name,
                f"{entry.distribution or entry.plugin} {entry.version or ''}".strip(),
                entry.engine_class.description,
            )
            for name, entry in sorted(found.items())
        ]
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, dist, description in rows:
            default = " (default)" if name == DEFAULT_ENGINE else ""
            click.echo(f"{name.ljust(width[0])}  {dist.ljust(width[1])}  {description}{default}")
    else:
        click.echo("No engines installed.")
    for failure in registry.failures:
        click.echo(f"failed: {failure.describe()}", err=True)
    for name in left_out:
        selected = os.environ.get(LOAD_PLUGINS_ENV, "")
        click.echo(f"not loaded: {name}  (installed; {LOAD_PLUGINS_ENV}={selected} leaves it out)")
    for name in missing:
        click.echo(f"not installed: {name}  ({CHECKOUT}: {KNOWN_ENGINE_INSTALLS[name]})")


@cli.command()
@click.pass_context
def formats(ctx: click.Context) -> None:
    """List the prompt formats that chat messages are rendered with."""
    for name, prompt_format in sorted(_state(ctx).registry.prompt_formats().items()):
        click.echo(f"{name:<10} {prompt_format.description}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sakura")


if __name__ == "__main__":
    # ``python -m sakura_core.cli`` runs this file as ``__main__``, a second copy of the module: run the group of
    # the module that plugins import, so that their ``isinstance(cli, SakuraGroup)`` holds as under ``sakura``
    # (sakura-translate would otherwise import its commands, with openpyxl and Pillow, at every start)
    from sakura_core.cli import main as imported_main

    imported_main()
