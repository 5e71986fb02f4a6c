"""The ``sakura`` command-line tool."""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import click

from sakura_core import __version__
from sakura_core.cli_options import ENGINE_PARAM_PREFIX, EngineOption, build_options, click_options_for
from sakura_core.engine import ModelLoadError
from sakura_core.plugins import KNOWN_ENGINE_DISTRIBUTIONS, PluginRegistry, RegisteredEngine, UnknownEngineError

DEFAULT_ENGINE = "llamacpp"
DEFAULT_LISTEN = "127.0.0.1:8080"
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
    engine: RegisteredEngine | None = None
    engine_error: str | None = None


def _state(ctx: click.Context) -> CliState:
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


class RunCommand(click.Command):
    """``sakura run``: its options grow by the chosen engine's own options, shown under the engine's name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        state = _state(ctx)
        # the command object outlives one invocation (tests, embedding): start again from the core's options
        core_params: list[click.Parameter] = self.__dict__.setdefault(
            "_core_params", [p for p in self.params if not (p.name or "").startswith(ENGINE_PARAM_PREFIX)]
        )
        self.params = list(core_params)
        name = peek_engine_name(args)
        try:
            state.engine = state.registry.engine(name)
        except UnknownEngineError as exc:
            state.engine_error = str(exc)
            if not ctx.resilient_parsing and not set(args) & set(ctx.help_option_names):
                raise OneLineUsageError(state.engine_error) from None
        else:
            # a hidden legacy spelling (--trust_remote_code) gives way to an engine option that claims it
            taken = {opt for param in self.params if not getattr(param, "hidden", False) for opt in _spellings(param)}
            state.engine_options = click_options_for(state.engine.engine_class.Options, taken)
            claimed = {opt for option in state.engine_options for opt in _spellings(option.option)}
            self.params = [p for p in self.params if not (getattr(p, "hidden", False) and claimed & _spellings(p))]
            self.params.extend(option.option for option in state.engine_options)
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        state = _state(ctx)
        engine_params = {option.option.name for option in state.engine_options}
        core = [p.get_help_record(ctx) for p in self.get_params(ctx) if p.name not in engine_params]
        with formatter.section("Options"):
            formatter.write_dl([record for record in core if record is not None])
        if state.engine is not None:
            engine = state.engine
            source = f", from {engine.distribution} {engine.version}" if engine.distribution else ""
            with formatter.section(f"Engine options: {engine.engine_class.name}{source}"):
                records = [o.option.get_help_record(ctx) for o in state.engine_options]
                formatter.write_dl([r for r in records if r is not None] or [("(none)", "")])
        elif state.engine_error:
            with formatter.section("Engine options"):
                formatter.write_text(state.engine_error)
        others = sorted(set(state.registry.engines()) - {state.engine.engine_class.name if state.engine else ""})
        if others:
            formatter.write_paragraph()
            formatter.write_text(
                f"Other engines: {', '.join(others)}; see their options with: sakura run --engine NAME --help"
            )


def _spellings(param: click.Parameter) -> set[str]:
    return {*param.opts, *getattr(param, "secondary_opts", [])}


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
    """The top-level group: plugins may add commands through the ``register_commands`` hook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands_added = False

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        if not self._plugin_commands_added:
            self._plugin_commands_added = True
            _state(ctx).registry.plugin_manager.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)


@click.group(cls=SakuraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="sakura")
def cli() -> None:
    """sakura: serve SakuraLLM translation models over the Sakura / OpenAI-compatible API.

    \b
    Quick start (the default engine is llama.cpp):
      sakura run --model ./sakura-7b-qwen2.5-v1.0-iq4xs.gguf
    then point your translator at http://127.0.0.1:8080
    """


@cli.command(cls=RunCommand, context_settings={"show_default": True})
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
    required=True,
    metavar="PATH_OR_TAG",
    help="Model file, directory, Hugging Face repository or Ollama tag, depending on the engine.",
)
@click.option(
    "--model-version",
    "--model_version",
    metavar="V",
    help="Sakura version (0.8, 0.9, 0.10, 1.0, galtransl); overrides what the model's name or metadata says.",
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
    "--max-body-size",
    type=click.IntRange(min=1024),
    default=8 * 1024 * 1024,
    metavar="BYTES",
    help="Largest request body (413 above it; a smaller bound follows from the model's context).",
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
    state = _state(ctx)
    if state.engine is None:
        raise OneLineUsageError(state.engine_error or "no engine")
    options = build_options(state.engine.engine_class.Options, ctx, state.engine_options)
    settings = _server_settings(params)
    _configure_logging(params["log_level"])
    engine = state.engine.engine_class(options)  # type: ignore[arg-type]
    import asyncio

    from sakura_core.server import serve  # the server (aiohttp) is imported only when serving

    try:
        asyncio.run(serve(settings, engine, state.registry, params["model"], params["model_version"]))
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
        max_body_bytes=params["max_body_size"],
        header_timeout_seconds=params["header_timeout"],
        body_timeout_seconds=params["body_timeout"],
        keepalive_timeout_seconds=params["keepalive_timeout"],
        cors_origins=parse_cors_origins(params["cors_origins"]),
        shutdown_grace_seconds=params["shutdown_grace"],
        self_check=params["self_check"],
        log_level=params["log_level"].lower(),
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
    registry = _state(ctx).registry
    found = registry.engines()
    missing = {name: dist for name, dist in KNOWN_ENGINE_DISTRIBUTIONS.items() if name not in found}
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
            "not_installed": [{"name": n, "install": f"pip install {d}"} for n, d in sorted(missing.items())],
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
        source = f" ({failure.distribution})" if failure.distribution else ""
        click.echo(f"failed to load: {failure.name}{source}: {failure.error}", err=True)
    for name, dist in sorted(missing.items()):
        click.echo(f"not installed: {name}  (pip install {dist})")


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
    main()
