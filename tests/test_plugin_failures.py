"""Plugins that get something wrong are reported in one line each, by name, and the others keep working.

The plugins here are installed for real: a distribution's metadata (``*.dist-info`` with its entry points) and its
module on the path of a ``sakura`` process, which finds them the way it finds any installed plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COLLIDING = """
from pydantic import Field
from sakura_core import Engine, EngineOptions, hookimpl


class CollideOptions(EngineOptions):
    port: int = Field(9000, description="The backend's port, spelled like sakura run's own --port.")


class CollideEngine(Engine):
    name = "collide"
    Options = CollideOptions

    async def load(self, model, model_version=None):
        raise NotImplementedError

    def count_tokens(self, text):
        return len(text)

    async def generate(self, prompt, params):
        yield prompt


@hookimpl
def register_engines(register):
    register(CollideEngine)
"""

HALF_DONE = """
from sakura_core import Engine, hookimpl


class HalfDoneEngine(Engine):
    name = "halfdone"

    async def load(self, model, model_version=None):
        raise NotImplementedError


@hookimpl
def register_engines(register):
    register(HalfDoneEngine)
"""

RAISING = """
from sakura_core import hookimpl


@hookimpl
def register_engines(register):
    raise RuntimeError("this plugin's registration is broken")
"""

SLOW_FAILING = """
import asyncio

from sakura_core import Engine, ModelLoadError, hookimpl


class SlowFailEngine(Engine):
    name = "slowfail"

    async def load(self, model, model_version=None):
        await asyncio.sleep(1.5)  # past the second after which the load is announced
        raise ModelLoadError("the model file is truncated: download it again")

    def count_tokens(self, text):
        return len(text)

    async def generate(self, prompt, params):
        yield prompt


@hookimpl
def register_engines(register):
    register(SlowFailEngine)
"""

LAZY = """
from sakura_core import hookimpl


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("hello", "lazy_command:hello", "Say hello (imported when it runs).")
"""

LAZY_COMMAND = '''
import sys

import click

print("lazy_command imported", file=sys.stderr)


@click.command()
@click.option("--name", default="sakura")
def hello(name):
    """Say hello."""
    click.echo(f"hello {name}")
'''

PLUGINS = {
    "collide": COLLIDING,
    "halfdone": HALF_DONE,
    "raising": RAISING,
    "lazy": LAZY,
    "slowfail": SLOW_FAILING,
}


def install(site: Path, name: str, source: str) -> None:
    """Distribution ``sakura-NAME``: entry point ``NAME`` of the group ``sakura``, the module ``NAME_plugin``."""
    (site / f"{name}_plugin.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"sakura_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sakura-{name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[sakura]\n{name} = {name}_plugin\n", encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("site")
    for name, source in PLUGINS.items():
        install(path, name, source)
    (path / "lazy_command.py").write_text(textwrap.dedent(LAZY_COMMAND), encoding="utf-8")
    return path


def sakura(site: Path | None, *args: str, plugins: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.pop("SAKURA_LOAD_PLUGINS", None)
    if plugins is not None:
        env["SAKURA_LOAD_PLUGINS"] = plugins
    command = [sys.executable, "-m", "sakura_core.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_sakura_engines_reports_each_broken_plugin_in_one_line_and_lists_the_others(site: Path) -> None:
    result = sakura(site, "engines", plugins="collide,halfdone,raising,echo")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines() if not line.startswith("not ")] == ["echo"]
    assert sorted(result.stderr.splitlines()) == [
        "failed: plugin collide (sakura-collide): engine 'collide': its option 'port' (--port) collides with "
        "`sakura run`'s own --port; rename the field in CollideOptions",
        "failed: plugin halfdone (sakura-halfdone): engine class HalfDoneEngine ('halfdone') does not implement "
        "count_tokens, generate",
        "failed: plugin raising (sakura-raising): RuntimeError: this plugin's registration is broken",
    ]


def test_sakura_engines_tells_an_installed_plugin_left_out_from_a_missing_one(site: Path) -> None:
    result = sakura(site, "engines", plugins="echo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the repository's engines are installed here: SAKURA_LOAD_PLUGINS leaves them out, nothing is missing
    assert "not loaded: llamacpp  (installed; SAKURA_LOAD_PLUGINS=echo leaves it out)" in lines
    assert not [line for line in lines if line.startswith("not installed")]
    as_json = json.loads(sakura(site, "engines", "--json", plugins="echo").stdout)
    assert (as_json["not_loaded"], as_json["not_installed"]) == (["llamacpp", "ollama", "vllm"], [])


@pytest.mark.parametrize(
    ("engine", "reason"),
    [
        ("collide", "its option 'port' (--port) collides with `sakura run`'s own --port"),
        ("halfdone", "engine class HalfDoneEngine ('halfdone') does not implement count_tokens, generate"),
        ("raising", "RuntimeError: this plugin's registration is broken"),
    ],
)
def test_sakura_run_with_a_broken_plugins_engine_says_why_in_one_line(site: Path, engine: str, reason: str) -> None:
    result = sakura(site, "run", "--engine", engine, "--model", "m", plugins=engine)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: the {engine} engine cannot be used: plugin {engine} (sakura-{engine}): ")
    assert reason in line


def test_sakura_run_warns_about_broken_plugins_and_the_others_still_serve(site: Path) -> None:
    result = sakura(site, "run", "--engine", "echo", "--help", plugins="collide,halfdone,raising,echo")
    assert result.returncode == 0, result.stderr
    assert "Engine options: echo" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_model_that_cannot_load_prints_only_the_error() -> None:
    result = sakura(None, "run", "--engine", "echo", "--model", " ", "--port", "0", plugins="echo")
    assert result.returncode == 1
    assert result.stdout == ""
    assert sorted(result.stderr.splitlines()) == ["Error: --model is empty: pass a model name such as sakura-echo-v1.0"]


def test_a_slow_load_that_fails_was_announced_once_and_ends_with_the_error(site: Path) -> None:
    result = sakura(site, "run", "--engine", "slowfail", "--model", "m.gguf", "--port", "0", plugins="slowfail")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "Error: the model file is truncated: download it again"
    [notice] = lines[:-1]  # as the docs say: one line that tells a waiting user what is loading, nothing else
    assert notice.endswith("loading m.gguf with the slowfail engine")


def test_the_same_failure_at_debug_level_shows_what_happened_before() -> None:
    result = sakura(
        None, "run", "--engine", "echo", "--model", " ", "--port", "0", "--log-level", "debug", plugins="echo"
    )
    assert result.returncode == 1
    assert "listening on http://127.0.0.1:" in result.stderr
    assert "engine closed" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: --model is empty")


def test_help_imports_neither_engine_classes_nor_pydantic() -> None:
    probe = (
        "import sys\nfrom sakura_core.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='sakura')\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic' or m.endswith('.engine')))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in output, output


def test_a_plugins_lazy_command(site: Path) -> None:
    listed = sakura(site, "--help", plugins="lazy")
    assert listed.returncode == 0
    assert "hello    Say hello (imported when it runs)." in listed.stdout
    assert "lazy_command imported" not in listed.stderr
    ran = sakura(site, "hello", "--name", "translator", plugins="lazy")
    assert (ran.returncode, ran.stdout) == (0, "hello translator\n")
    assert "lazy_command imported" in ran.stderr
