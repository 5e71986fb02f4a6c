"""The sakura command line: help, engines, engine options, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import NoReturn

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field, model_validator

from sakura_core import Engine, hookimpl
from sakura_core.cli import CliState, cli, parse_listen, peek_engine_name
from sakura_core.engine import ModelLoadError
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.reference_engine import ReferenceEngine


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
    assert "pip install sakura-llamacpp" in lines[0]


def test_known_but_missing_engine_names_its_distribution() -> None:
    result = invoke("run", "--engine", "vllm", "--model", "x")
    assert result.exit_code == 2
    assert "pip install sakura-vllm" in result.output


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
    assert "pip install sakura-ollama" in result.output


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
    assert "not installed: llamacpp  (pip install sakura-llamacpp)" in result.output


def test_formats_lists_sakura_formats() -> None:
    result = invoke("formats")
    assert result.exit_code == 0
    for name in ("v0.8", "v0.9", "v0.10", "v1.0", "galtransl"):
        assert name in result.output


ENGINE_LIBRARIES = ("llama_cpp", "vllm", "ollama", "torch", "aiohttp")


@pytest.mark.parametrize("args", [["--help"], ["engines"]])
def test_help_and_engines_import_no_engine_library_and_are_fast(args: list[str]) -> None:
    probe = (
        "import sys, time; t = time.perf_counter(); from sakura_core.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='sakura')\nexcept SystemExit:\n    pass\n"
        "print('ELAPSED', time.perf_counter() - t)\n"
        f"print('LOADED', [m for m in {ENGINE_LIBRARIES!r} if m in sys.modules])"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in output, output
    timings = []
    for _ in range(3):  # the best of three, so that a busy machine does not decide the result
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sakura_core.cli", *args], capture_output=True, check=True)
        timings.append(time.perf_counter() - started)
    elapsed = min(timings)
    assert elapsed < 0.3 * 3, f"`sakura {' '.join(args)}` took {elapsed:.2f} s"
