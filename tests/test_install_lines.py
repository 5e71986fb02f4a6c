"""Every ``pip install`` line of the README, the docs and sakura's own messages installs what it says, from a checkout.

sakura's distributions are not on PyPI, and PyPI's ``sakura-core`` is an unrelated project (0.1.2, a package named
``sakura``). So each line is resolved by pip itself, without network: this repository's distributions are built into
wheels, each third-party distribution they depend on is stood in for by an empty wheel, and so is PyPI's
``sakura-core`` 0.1.2. ``pip install --dry-run --no-index --ignore-installed`` then resolves the line as in a fresh
virtual environment. A line fails when it names a path that is not one of our distributions, one of our
distributions by name (there is nothing on PyPI to install), a distribution none of ours depends on, an extra the
distribution lacks, or when pip cannot resolve it or would take PyPI's ``sakura-core``.

Lines run in the checkout's root, in a fresh environment. sakura's own messages are printed by an installed sakura,
so they are resolved with the core installed: the strings of its code, Python blocks of the pages, and inline code
quoting its output (``Error: ...``). A comment just before a fenced block of a page says where that block runs:
``<!-- pip: in tests/fixtures/sakura-echo-plugin, with sakura installed -->``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import sakura_core
from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import KNOWN_ENGINE_INSTALLS, PluginRegistry, UnknownEngineError

ROOT = Path(__file__).resolve().parent.parent
#: Every distribution in this repository.
DISTRIBUTION_DIRS = (
    ROOT,
    *sorted((ROOT / "plugins").glob("sakura-*")),
    ROOT / "tests" / "fixtures" / "sakura-echo-plugin",
)
#: Pages people read and copy commands from.
PAGES = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "plugins").glob("*/README.md")),
    ROOT / "tests" / "fixtures" / "sakura-echo-plugin" / "README.md",
)
#: Python code whose messages tell users what to install.
SOURCES = (
    *sorted((ROOT / "sakura_core").rglob("*.py")),
    *sorted(path for path in (ROOT / "plugins").glob("*/sakura_*/**/*.py")),
    *sorted((ROOT / "tests" / "fixtures" / "sakura-echo-plugin" / "sakura_echo").glob("*.py")),
)
#: Tools the docs name that no distribution here depends on: docs/plugins.md publishes a plugin with them.
TOOLS = ("build", "twine")
#: The version of PyPI's unrelated ``sakura-core``.
PYPI_SAKURA_CORE = "0.1.2"

PIP_INSTALL = re.compile(r"\bpip install\b")
TOKEN = re.compile(r"""\s*((?:'[^']*'|"[^"]*"|[^\s'"])+)""")
STOP_TOKENS = {"&&", "||", "|", ";", "or", "and", "then"}
#: An inline code span quoting what sakura prints: sakura is installed where the line is read.
QUOTED_MESSAGE = re.compile(r"Error: |unknown engine ")
BLOCK_CONTEXT = re.compile(r"<!-- pip: in (?P<cwd>\S+?)(?P<installed>, with sakura installed)? -->")
FLAGS = {"-U", "--upgrade", "--force-reinstall", "--no-cache-dir", "-q", "--quiet", "--pre"}
INDEX_OPTIONS = {"--extra-index-url", "--index-url", "-i"}  # their value is dropped: resolution is offline
EDITABLE = {"-e", "--editable"}
PATH_WITH_EXTRAS = re.compile(r"(?P<path>.+?)(?:\[(?P<extras>[^\]]*)\])?")


@dataclass(frozen=True)
class Context:
    """Where a line runs: its working directory (relative to the checkout's root) and whether sakura is installed."""

    cwd: str = "."
    sakura_installed: bool = False


@dataclass(frozen=True)
class InstallLine:
    """One ``pip install`` command found somewhere, with its arguments."""

    where: str
    args: tuple[str, ...]
    context: Context

    @property
    def command(self) -> str:
        return "pip install " + " ".join(shlex.quote(arg) for arg in self.args)


def pip_commands(text: str) -> Iterator[tuple[str, ...]]:
    """The arguments of each ``pip install`` in ``text``: the words after it up to the end of the command."""
    for match in PIP_INSTALL.finditer(text):
        args: list[str] = []
        position = match.end()
        while (token := TOKEN.match(text, position)) is not None:
            raw = token.group(1)
            position = token.end()
            if raw.startswith(("#", "(")) or raw in STOP_TOKENS:
                break
            last = raw[-1] in ",;)"
            args.append(shlex.split(raw.rstrip(",;)"))[0])
            if last:
                break
        if args:
            yield tuple(args)


def page_lines(page: Path) -> Iterator[InstallLine]:
    """The ``pip install`` commands of a Markdown page: in fenced blocks, and in inline code spans of the prose."""
    where = page.relative_to(ROOT).as_posix()
    in_block = False
    context = pending = Context()
    prose: list[tuple[int, str]] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if line.strip().startswith("```"):
            in_block = not in_block
            if in_block and line.strip() == "```python":  # code: its strings are messages of a running sakura
                pending = Context(pending.cwd, sakura_installed=True)
            context, pending = (pending, Context()) if in_block else (Context(), Context())
            continue
        if not in_block:
            if (comment := BLOCK_CONTEXT.search(line)) is not None:
                pending = Context(comment["cwd"], comment["installed"] is not None)
            prose.append((number, line))
            continue
        start = number
        while line.endswith("\\") and number < len(lines):
            line = line[:-1] + " " + lines[number]
            number += 1
        for args in pip_commands(line):
            yield InstallLine(f"{where}:{start}", args, context)
    text = "\n".join(line for _, line in prose)
    for span in re.finditer(r"`([^`]+)`", text):
        number = prose[text.count("\n", 0, span.start())][0]
        quoted = span.group(1).replace("\n", " ")
        for args in pip_commands(quoted):
            yield InstallLine(
                f"{where}:{number}", args, Context(sakura_installed=QUOTED_MESSAGE.match(quoted) is not None)
            )


def source_lines(source: Path) -> Iterator[InstallLine]:
    """The ``pip install`` commands in a module's strings; a part filled in at run time is left to the run-time test."""
    where = source.relative_to(ROOT).as_posix()
    tree = ast.parse(source.read_text(encoding="utf-8"))
    in_f_strings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_f_strings:
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(part.value if isinstance(part, ast.Constant) else "\0" for part in node.values)
        else:
            continue
        for args in pip_commands(text):
            if not any("\0" in arg for arg in args):
                yield InstallLine(f"{where}:{node.lineno}", args, Context(sakura_installed=True))


def all_lines() -> list[InstallLine]:
    lines = [line for page in PAGES for line in page_lines(page)]
    return lines + [line for source in SOURCES for line in source_lines(source)]


def grouped(lines: Sequence[InstallLine]) -> list[list[InstallLine]]:
    """Lines with the same command in the same context, together: each is resolved once."""
    groups: dict[tuple[tuple[str, ...], Context], list[InstallLine]] = {}
    for line in lines:
        groups.setdefault((line.args, line.context), []).append(line)
    return list(groups.values())


def _stand_in_wheel(folder: Path, name: str, version: str) -> None:
    """An empty wheel called ``name`` at ``version``: enough for pip to resolve it."""
    stem = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{stem}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{stem}.dist-info/RECORD", "")


def _satisfying_version(name: str, requirements: Sequence[Requirement]) -> str:
    """A version every requirement on ``name`` accepts: one of the versions they mention, or a large one."""
    mentioned = {spec.version.removesuffix(".*") for req in requirements for spec in req.specifier}
    for candidate in sorted(mentioned | {"999"}, key=Version):
        if all(req.specifier.contains(candidate, prereleases=True) for req in requirements):
            return candidate
    raise AssertionError(f"no version satisfies every requirement on {name}: {[str(r) for r in requirements]}")


def pip_environment() -> dict[str, str]:
    """This process's environment without any pip configuration (no index, find-links or constraints of the host)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    environment.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return environment


@dataclass
class Distribution:
    name: str
    version: str
    wheel: Path
    extras: set[str]
    requirements: list[Requirement]


@dataclass
class InstallChecker:
    """Resolves install lines offline against this repository's wheels and stand-ins for everything else."""

    ours: Path
    stand_ins: Path
    distributions: dict[Path, Distribution] = field(default_factory=dict)
    #: Problems by the requirements pip was given: lines that differ only in flags are resolved once.
    resolved: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, folder: Path) -> InstallChecker:
        checker = cls(folder / "ours", folder / "stand-ins")
        checker.stand_ins.mkdir(parents=True)
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        subprocess.run(
            [*build, "-w", str(checker.ours), *map(str, DISTRIBUTION_DIRS)], check=True, env=pip_environment()
        )
        for directory in DISTRIBUTION_DIRS:
            checker.distributions[directory.resolve()] = checker._metadata_of(directory)
        ours = checker.our_names
        third_party: dict[str, list[Requirement]] = {}
        for distribution in checker.distributions.values():
            for requirement in distribution.requirements:
                if canonicalize_name(requirement.name) not in ours:
                    third_party.setdefault(canonicalize_name(requirement.name), []).append(requirement)
        for name, requirements in third_party.items():
            _stand_in_wheel(checker.stand_ins, name, _satisfying_version(name, requirements))
        for tool in TOOLS:
            _stand_in_wheel(checker.stand_ins, tool, "1.0")
        _stand_in_wheel(checker.stand_ins, "sakura-core", PYPI_SAKURA_CORE)
        return checker

    def _metadata_of(self, directory: Path) -> Distribution:
        name = canonicalize_name(_project_name(directory)).replace("-", "_")
        [wheel] = self.ours.glob(f"{name}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            [path] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            metadata = Parser().parsestr(archive.read(path).decode())
        return Distribution(
            name=canonicalize_name(metadata["Name"]),
            version=metadata["Version"],
            wheel=wheel,
            extras={canonicalize_name(extra) for extra in metadata.get_all("Provides-Extra", [])},
            requirements=[Requirement(text) for text in metadata.get_all("Requires-Dist", [])],
        )

    @property
    def our_names(self) -> set[str]:
        return {distribution.name for distribution in self.distributions.values()}

    def core(self) -> Distribution:
        return self.distributions[ROOT.resolve()]

    def problems(self, line: InstallLine) -> list[str]:
        """What is wrong with ``line``; empty when it installs from this checkout what it names."""
        problems: list[str] = []
        requirements: list[str] = []
        args = iter(line.args)
        for arg in args:
            if arg in FLAGS:
                continue
            if arg in INDEX_OPTIONS:
                next(args, None)
                continue
            if arg in EDITABLE:
                arg = next(args, "")
            elif arg.startswith("-"):
                problems.append(f"an option this test does not know: {arg}")
                continue
            problem = self._requirement(arg, line.context, requirements)
            if problem:
                problems.append(problem)
        if problems:
            return problems
        if line.context.sakura_installed:
            requirements.insert(0, str(self.core().wheel))
        return self._resolve(requirements)

    def _requirement(self, arg: str, context: Context, requirements: list[str]) -> str | None:
        if "://" not in arg and (arg.startswith((".", "/", "~")) or "/" in arg):
            match = PATH_WITH_EXTRAS.fullmatch(arg)
            assert match is not None
            directory = (ROOT / context.cwd / match["path"]).resolve()
            distribution = self.distributions.get(directory)
            if distribution is None:
                return f"{arg}: no distribution of this repository is at {directory}"
            extras = {canonicalize_name(e) for e in (match["extras"] or "").split(",") if e.strip()}
            if extras - distribution.extras:
                return f"{arg}: {distribution.name} has no extra {', '.join(sorted(extras - distribution.extras))}"
            requirements.append(
                f"{distribution.wheel}[{','.join(sorted(extras))}]" if extras else str(distribution.wheel)
            )
            return None
        try:
            requirement = Requirement(arg)
        except InvalidRequirement as exc:
            return f"{arg}: not a requirement pip understands ({exc})"
        name = canonicalize_name(requirement.name)
        if name in self.our_names:
            return f"{arg}: {requirement.name} is not on PyPI; install it from its folder in the checkout"
        if not list(self.stand_ins.glob(f"{name.replace('-', '_')}-*.whl")):
            return f"{arg}: no distribution of this repository depends on {requirement.name}"
        requirements.append(arg)
        return None

    def _resolve(self, requirements: list[str]) -> list[str]:
        key = tuple(requirements)
        if key not in self.resolved:
            self.resolved[key] = self._resolve_with_pip(requirements)
        return self.resolved[key]

    def _resolve_with_pip(self, requirements: list[str]) -> list[str]:
        result = self.pip_dry_run(requirements)
        if result.returncode != 0:
            return [f"pip cannot resolve it: {' '.join(result.stderr.split())[-600:]}"]
        chosen = json.loads(result.stdout)["install"]
        problems = []
        for item in chosen:
            name = canonicalize_name(item["metadata"]["name"])
            url = item["download_info"]["url"]
            if name in self.our_names and not url.startswith(self.ours.as_uri()):
                problems.append(f"pip would take {name} {item['metadata']['version']} from PyPI: another project")
        return problems

    def pip_dry_run(self, requirements: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """``pip install --dry-run`` as in a fresh environment, offline, with a JSON report on stdout."""
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index", "-q"]
        # only the stand-ins play PyPI: our wheels are installed only where a line names their folder
        command += ["--find-links", str(self.stand_ins), "--report", "-"]
        return subprocess.run(
            [*command, *requirements], capture_output=True, text=True, env=pip_environment(), check=False
        )


def _project_name(directory: Path) -> str:
    import tomllib

    return str(tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"])


LINE_GROUPS = grouped(all_lines())


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> InstallChecker:
    return InstallChecker.build(tmp_path_factory.mktemp("install-lines"))


@pytest.fixture(scope="module")
def line_problems(checker: InstallChecker) -> dict[int, list[str]]:
    """The problems of every line group, found with a pip per CPU at once (each pip is a second of one CPU)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(enumerate(pool.map(lambda group: checker.problems(group[0]), LINE_GROUPS)))


def test_the_pages_and_messages_have_install_lines() -> None:
    """The collection itself works: the README's set-up command and the engines' hints are among the lines."""
    commands = {(line.where.split(":")[0], line.command) for group in LINE_GROUPS for line in group}
    assert ("README.md", "pip install ./ ./plugins/sakura-llamacpp") in commands
    assert ("sakura_core/plugins.py", "pip install './plugins/sakura-vllm[gpu]'") in commands
    assert len(LINE_GROUPS) >= 15


@pytest.mark.parametrize("index", range(len(LINE_GROUPS)), ids=[group[0].where for group in LINE_GROUPS])
def test_install_line_installs_from_this_checkout(index: int, line_problems: dict[int, list[str]]) -> None:
    group, problems = LINE_GROUPS[index], line_problems[index]
    assert not problems, f"{group[0].command} ({', '.join(line.where for line in group)}): " + "; ".join(problems)


def test_the_messages_composed_at_run_time(checker: InstallChecker) -> None:
    """The unknown-engine hints and ``sakura engines``' list, as a sakura with no engine prints them."""
    registry = PluginRegistry.create(entry_points=False)
    messages = []
    for name in [*KNOWN_ENGINE_INSTALLS, "nope"]:
        with pytest.raises(UnknownEngineError) as unknown:
            registry.engine(name)
        messages.append(str(unknown.value))
    listed = CliRunner().invoke(cli, ["engines"], obj=CliState(registry))
    as_json = CliRunner().invoke(cli, ["engines", "--json"], obj=CliState(registry))
    assert listed.exit_code == as_json.exit_code == 0, listed.output + as_json.output
    messages.append(listed.output)
    messages += [entry["install"] for entry in json.loads(as_json.output)["not_installed"]]
    lines = {args for message in messages for args in pip_commands(message)}
    assert len(lines) == len(KNOWN_ENGINE_INSTALLS)
    for args in sorted(lines):
        line = InstallLine("run time", args, Context(sakura_installed=True))
        assert not checker.problems(line), f"{line.command}: {checker.problems(line)}"


@pytest.mark.parametrize(
    ("command", "context", "problem"),
    [
        ("pip install sakura-llamacpp", Context(), "is not on PyPI"),
        ("pip install ./plugins/sakura-nothing", Context(), "no distribution of this repository"),
        ("pip install sakura-nothing-at-all", Context(), "no distribution of this repository depends on"),
        ("pip install './plugins/sakura-vllm[gpux]'", Context(), "has no extra gpux"),
        ("pip install --user ./", Context(), "an option this test does not know"),
        # a plugin alone, in a fresh environment: the core is nowhere but on PyPI, where it is another project
        ("pip install ./plugins/sakura-llamacpp", Context(), "pip cannot resolve it"),
    ],
)
def test_wrong_lines_fail(command: str, context: Context, problem: str, checker: InstallChecker) -> None:
    [args] = list(pip_commands(command))
    problems = checker.problems(InstallLine("example", args, context))
    assert problems and problem in problems[0], problems


def test_pypis_sakura_core_satisfies_no_requirement_here(checker: InstallChecker) -> None:
    """Every requirement on sakura-core excludes PyPI's project and accepts this checkout's core."""
    core = checker.core()
    on_core = [
        (distribution.name, requirement)
        for distribution in checker.distributions.values()
        for requirement in distribution.requirements
        if canonicalize_name(requirement.name) == "sakura-core"
    ]
    assert {name for name, _ in on_core} == checker.our_names - {"sakura-core"}
    for name, requirement in on_core:
        assert not requirement.specifier.contains(PYPI_SAKURA_CORE), f"{name}: {requirement}"
        assert requirement.specifier.contains(core.version), f"{name}: {requirement}"


def test_a_plugin_beside_the_core_takes_this_checkouts_core(checker: InstallChecker) -> None:
    """Naming ``./`` and the plugin together resolves without conflict to this checkout's core."""
    result = checker.pip_dry_run(
        [str(checker.core().wheel), str(checker.distributions[DISTRIBUTION_DIRS[1].resolve()].wheel)]
    )
    assert result.returncode == 0, result.stderr
    chosen = {canonicalize_name(item["metadata"]["name"]): item for item in json.loads(result.stdout)["install"]}
    assert chosen["sakura-core"]["metadata"]["version"] == checker.core().version


def test_the_core_version_is_sakura_core_version_with_its_epoch(checker: InstallChecker) -> None:
    assert checker.core().version == f"1!{sakura_core.__version__}"
