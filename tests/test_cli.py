"""The sakura command line: help, engines, engine options, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from importlib.metadata import packages_distributions
from typing import NoReturn

import click
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field, model_validator
from sakura_echo.scripted import ReferenceEngine

from sakura_core import Engine, hookimpl
from sakura_core.cli import cli, parse_listen
from sakura_core.cli_options import build_options
from sakura_core.engine import ModelLoadError
from sakura_core.engine_command import CliState, EngineCommand, peek_engine_name
from sakura_core.plugins import PluginRegistry


class ReferencePlugin:
    @hookimpl
    def register_engines(self, register):
        register(ReferenceEngine)


def invoke(*args: str, plugins: tuple[tuple[str, object], ...] = ()) -> click.testing.Result:
    registry = PluginRegistry.create(entry_points=False, plugins=[("reference-plugin", ReferencePlugin()), *plugins])
    return CliRunner().invoke(cli, list(args), obj=CliState(registry))


class ElsewhereOptions(BaseModel):
    elsewhere: str | None = Field(None, description="Host the engine at this place.")
    elsewhere_slots: int = Field(2, ge=1, description="Slots of the place.")
    parallel: int = Field(1, description="Taken by the engine's --parallel already.")

    @model_validator(mode="after")
    def _slots_need_a_place(self) -> ElsewhereOptions:
        if self.elsewhere_slots != 2 and self.elsewhere is None:
            raise ValueError("--elsewhere-slots needs --elsewhere")
        return self


class ElsewhereEngine(ReferenceEngine):
    """A stand-in whose load says where it would have hosted which engine."""

    def __init__(self, engine: Engine, options: ElsewhereOptions) -> None:
        super().__init__()
        self.hosted, self.place = engine, options

    async def load(self, model: str, model_version: str | None = None) -> NoReturn:
        raise ModelLoadError(
            f"would host {self.hosted.name} (parallel {self.hosted.parallelism}) at {self.place.elsewhere} "
            f"with {self.place.elsewhere_slots} slots"
        )


class ElsewherePlugin:
    """Adds --elsewhere to `sakura run` and hosts the engine with ElsewhereEngine when it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Engine, ElsewhereOptions]] = []

    @hookimpl
    def register_run_options(self, register):
        register(ElsewhereOptions, "Hosting elsewhere (test plugin)")

    @hookimpl
    def host_engine(self, engine, run_options):
        options = run_options[ElsewhereOptions]
        self.calls.append((engine, options))
        return None if options.elsewhere is None else ElsewhereEngine(engine, options)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "sakura" in result.output and "0.1.0" in result.output


def test_unknown_engine_is_one_line_listing_engines_and_install_hint() -> None:
    result = invoke("run", "--engine", "nope", "--model", "x.gguf")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "unknown engine 'nope'" in lines[0]
    assert "installed: reference" in lines[0]
    assert "pip install ./plugins/sakura-llamacpp" in lines[0]


def test_known_but_missing_engine_names_its_distribution() -> None:
    result = invoke("run", "--engine", "vllm", "--model", "x")
    assert result.exit_code == 2
    assert "pip install './plugins/sakura-vllm[gpu]'" in result.output


def test_unknown_engine_reported_before_missing_model() -> None:
    result = invoke("run", "--engine", "nope")
    assert result.exit_code == 2
    assert "unknown engine 'nope'" in result.output


def test_run_help_groups_engine_options_under_engine_name() -> None:
    result = invoke("run", "--engine", "reference", "--help")
    assert result.exit_code == 0, result.output
    core, _, engine_section = result.output.partition("Engine options: reference")
    assert engine_section, result.output
    assert "--model-version" in core and "--listen" in core
    assert "--parallel" in engine_section and "--parallel" not in core
    assert "--token-delay" in engine_section
    assert "Sequences generated together." in engine_section
    assert "default: 4" in engine_section


def test_plugin_run_options_have_their_own_heading_and_leave_taken_spellings_out() -> None:
    result = invoke("run", "--engine", "reference", "--help", plugins=(("elsewhere", ElsewherePlugin()),))
    assert result.exit_code == 0, result.output
    core, _, rest = result.output.partition("Hosting elsewhere (test plugin):")
    plugin_section, _, engine_section = rest.partition("Engine options: reference")
    assert "--elsewhere TEXT" in plugin_section and "Host the engine at this place." in plugin_section
    assert "--elsewhere-slots" in plugin_section and "default: 2" in plugin_section
    assert "--elsewhere" not in core and "--elsewhere" not in engine_section
    assert "Taken by the engine" not in result.output  # --parallel stays the engine's
    assert "--parallel" in engine_section


def test_a_plugin_hosts_the_engine_only_when_its_options_are_given() -> None:
    plugin = ElsewherePlugin()
    result = invoke(
        "run", "--engine", "reference", "--model", "m", "-np", "3", "--elsewhere", "mars", "--elsewhere-slots", "5",
        plugins=(("elsewhere", plugin),),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Error: would host reference (parallel 3) at mars with 5 slots" in result.output
    [(engine, options)] = plugin.calls
    assert isinstance(engine, ReferenceEngine) and engine.options.parallel == 3 and engine.model_info is None
    assert options == ElsewhereOptions(elsewhere="mars", elsewhere_slots=5)


def test_plugin_run_option_errors_are_one_usage_line() -> None:
    plugin = ElsewherePlugin()
    for args, message in (
        (["--elsewhere-slots", "0"], "invalid value for --elsewhere-slots"),
        (["--elsewhere-slots", "3"], "--elsewhere-slots needs --elsewhere"),
    ):
        result = invoke("run", "--engine", "reference", "--model", "m", *args, plugins=(("elsewhere", plugin),))
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Value error" not in result.output
    assert plugin.calls == []


def test_engine_options_have_underscore_and_declared_aliases() -> None:
    for spelling in ("--token_delay", "--token-delay"):
        result = invoke("run", "--engine", "reference", "--model", "m", spelling, "-1")
        assert result.exit_code == 2
        assert "invalid value for --token-delay" in result.output
    result = invoke("run", "--engine", "reference", "--model", "m", "-np", "0")
    assert result.exit_code == 2
    assert "invalid value for --parallel" in result.output


def test_legacy_engine_flags_and_model_spelling() -> None:
    assert peek_engine_name(["--model_name_or_path", "x", "--vllm"]) == "vllm"
    assert peek_engine_name(["--llama_cpp"]) == "llamacpp"
    assert peek_engine_name(["--engine=ollama"]) == "ollama"
    assert peek_engine_name([]) == "llamacpp"
    result = invoke("run", "--ollama", "--model_name_or_path", "x")
    assert result.exit_code == 2
    assert "pip install ./plugins/sakura-ollama" in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9000", ("127.0.0.1", 9000)),
        ("9000", ("127.0.0.1", 9000)),
        ("[::1]:8081", ("::1", 8081)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["host:port", "1.2.3.4:70000"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_listen(value)


def test_contradicting_auth_options() -> None:
    result = invoke("run", "--engine", "reference", "--model", "m", "--auth", "a:b", "--no-auth")
    assert result.exit_code == 2
    assert "contradict" in result.output
    result = invoke("run", "--engine", "reference", "--model", "m", "--auth", "nocolon")
    assert result.exit_code == 2
    assert "USER:PASS" in result.output


def test_engines_lists_registered_and_missing() -> None:
    result = invoke("engines")
    assert result.exit_code == 0
    assert "reference" in result.output
    assert "not installed: llamacpp  (in a sakura checkout: pip install ./plugins/sakura-llamacpp)" in result.output


def test_formats_lists_sakura_formats() -> None:
    result = invoke("formats")
    assert result.exit_code == 0
    for name in ("v0.8", "v0.9", "v0.10", "v1.0", "v1.5", "galtransl"):
        assert name in result.output


def dependency_modules(distribution: str, *, leaving_out: str) -> set[str]:
    """Top-level modules of ``distribution``'s installed requirements, recursively (extras and ``leaving_out`` and
    its own requirements left out)."""
    provided = packages_distributions()
    names: set[str] = {canonicalize_name(leaving_out)}
    todo = [distribution]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in names:
            continue
        names.add(name)
        for text in metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    names -= {canonicalize_name(distribution), canonicalize_name(leaving_out)}
    return {module for module, owners in provided.items() if names & {canonicalize_name(d) for d in owners}}


@pytest.mark.parametrize("args", [["--help"], ["engines"]])
def test_help_and_engines_import_only_the_cores_dependencies(args: list[str]) -> None:
    """What makes ``sakura --help`` fast: beside the standard library it imports sakura-core's own dependencies and
    the plugins' entry-point modules, no engine library, no server (aiohttp), nothing else a plugin depends on."""
    probe = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "from sakura_core.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='sakura')\nexcept SystemExit:\n    pass\n"
        "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "loaded = {m for m in loaded - set(sys.stdlib_module_names) if not m.startswith('_sysconfigdata')}\n"
        "print('LOADED', json.dumps(sorted(loaded)))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(output.split("LOADED ", 1)[1]))
    assert {"click", "sakura_core"} <= loaded  # the probe sees what the command imported
    allowed = dependency_modules("sakura-core", leaving_out="aiohttp")  # the server's library: imported to serve
    unexpected = {m for m in loaded - allowed if not m.startswith("sakura_")}
    assert unexpected == set(), f"`sakura {' '.join(args)}` imported {sorted(unexpected)}"


class EngineWhenAsked(EngineCommand):
    """A command that loads an engine only when ``--engine`` is on its command line."""

    def engine_name(self, args: list[str]) -> str | None:
        return peek_engine_name(args) if any(a == "--engine" or a.startswith("--engine=") for a in args) else None


@click.command(cls=EngineWhenAsked)
@click.option("--engine", metavar="NAME")
@click.pass_context
def engine_when_asked(ctx: click.Context, engine: str | None, **params: object) -> None:
    state = ctx.find_object(CliState)
    assert state is not None
    if state.engine is None:
        click.echo("no engine")
    else:
        options = build_options(state.engine.engine_class.Options, ctx, state.engine_options)
        click.echo(f"{state.engine.engine_class.name}: {options.model_dump()['parallel']}")


def invoke_engine_when_asked(*args: str) -> click.testing.Result:
    registry = PluginRegistry.create(entry_points=False, plugins=[("reference-plugin", ReferencePlugin())])
    return CliRunner().invoke(engine_when_asked, list(args), obj=CliState(registry), prog_name="job")


def test_a_command_may_ask_for_no_engine() -> None:
    result = invoke_engine_when_asked()
    assert (result.exit_code, result.output) == (0, "no engine\n")
    # without an engine, an engine's options are not options of the command
    assert invoke_engine_when_asked("--parallel", "3").exit_code == 2
    result = invoke_engine_when_asked("--engine", "reference", "--parallel", "3")
    assert (result.exit_code, result.output) == (0, "reference: 3\n")
    help_text = invoke_engine_when_asked("--help").output
    assert "Engine options" not in help_text
    assert "Engines: reference; see their options with: job --engine NAME --help" in " ".join(help_text.split())


def test_an_unknown_model_version_is_a_one_line_usage_error_naming_the_known_ones() -> None:
    result = invoke("run", "--engine", "reference", "--model", "m.gguf", "--model-version", "2.0")
    assert result.exit_code == 2
    assert result.output == (
        "Error: unknown model version '2.0'; the known versions are: 0.8, 0.9, 0.10, 1.0, 1.5, galtransl\n"
    )


def test_python_dash_m_runs_the_group_plugins_see_so_lazy_commands_stay_unimported() -> None:
    """``python -m sakura_core.cli`` (how tests and benchmarks start the server) runs the same group class that
    plugins import: sakura-translate's commands then stay lazy, as under ``sakura``, and their modules (openpyxl,
    Pillow: tens of MB) are not imported by ``--help`` or a server start."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sakura_core.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "translate" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "sakura_translate.cli" not in imported
