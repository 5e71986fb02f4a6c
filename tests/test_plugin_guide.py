"""docs/plugins.md stays true: its example plugin is the tested fixture, and its hook examples run."""

from __future__ import annotations

import logging
import re
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sakura_echo.scripted import ReferenceEngine

from sakura_core import hookimpl
from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.format_choice import UnknownModelVersionError
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.checks import check_cancellation, check_concurrent_generations, check_engine_basics
from sakura_core.types import GenerationRequest, SamplingParams

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
FIXTURE = ROOT / "tests" / "fixtures" / "sakura-echo-plugin"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<code>.*?)```", re.DOTALL)
#: Lines of the fixture's pyproject.toml that only sakura's own tests need (the guide leaves them out).
TEST_ONLY_LINES = ("# Only for sakura's own tests", "broken = ")


def guide_section(title: str, next_title: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return text[text.index(title) : text.index(next_title)]


def test_the_guides_example_files_are_the_fixtures_files() -> None:
    blocks = {m["path"]: m["code"] for m in FILE_BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}
    assert set(blocks) == {
        "pyproject.toml",
        "sakura_echo/backend.py",
        "sakura_echo/engine.py",
        "sakura_echo/__init__.py",
        "tests/test_echo_conformance.py",
    }
    for path, code in blocks.items():
        lines = (FIXTURE / path).read_text(encoding="utf-8").splitlines(keepends=True)
        expected = "".join(line for line in lines if not line.startswith(TEST_ONLY_LINES))
        assert code == expected, f"docs/plugins.md's {path} differs from the fixture's"


@pytest.fixture(scope="module")
def hook_examples() -> list[types.ModuleType]:
    """The guide's hook examples as modules (the first, which imports an imaginary package, left out)."""
    blocks = re.findall(r"```python\n(.*?)```", guide_section("## The hooks", "## The conformance kit"), re.DOTALL)
    modules = []
    for index, code in enumerate(blocks):
        if "my_plugin" in code:
            continue
        module = types.ModuleType(f"guide_example_{index}")
        module.__file__ = str(GUIDE)  # an example that finds files beside its module looks beside the guide
        exec(compile(code, f"docs/plugins.md hook example {index}", "exec"), module.__dict__)
        modules.append(module)
    assert len(modules) == 6
    return modules


@pytest.fixture
def registry(hook_examples: list[types.ModuleType]) -> PluginRegistry:
    return PluginRegistry.create(entry_points=False, plugins=[(module.__name__, module) for module in hook_examples])


def test_the_prompt_format_example_registers_and_renders(registry: PluginRegistry) -> None:
    v20 = registry.prompt_format("v2.0")
    assert v20.render([{"role": "user", "content": "你好"}]) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert [m["role"] for m in v20.translation_messages("テキスト", "", "前文")] == ["system", "assistant", "user"]


async def test_the_prompt_format_example_is_chosen_for_v2_models_with_no_engine_change(
    registry: PluginRegistry,
) -> None:
    engine = ReferenceEngine()  # an engine that names no prompt format, as engines should
    for model, expected in (
        ("sakura-14b-v2.0-q4km.gguf", "v2.0"),
        ("GalTransl-7B-v2.6-IQ4_XS.gguf", "galtransl"),
        ("sakura-7b-qwen2.5-v1.0-iq4xs.gguf", "v1.0"),
    ):
        info = await engine.load(model)
        assert info.prompt_format is None
        assert LoadedModel(engine, registry, info).prompt_format.name == expected, model
    loaded = await LoadedModel.load(engine, registry, "sakura-echo", model_version="2.0")
    assert loaded.prompt_format.name == "v2.0" and loaded.info.prompt_format == "v2.0"
    with pytest.raises(UnknownModelVersionError, match=r"unknown model version '2\.0'; the known versions are: .*1\.5"):
        PluginRegistry.create(entry_points=False).check_model_version("2.0")


def test_the_command_example_adds_a_command(registry: PluginRegistry) -> None:
    group = click.Group("sakura")  # a fresh group: the real one keeps the commands of the first registry it saw
    registry.plugin_manager.hook.register_commands(cli=group)
    result = CliRunner().invoke(group, ["echo-say", "将下面的日文文本翻译成中文：やる気", "--times", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == "やる気\nやる気\n"
    assert "echo-say" in CliRunner().invoke(group, ["--help"]).output


async def test_the_generation_hook_examples_adjust_and_observe(
    registry: PluginRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    engine = ReferenceEngine()
    model = await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    request = GenerationRequest(prompt="abc", params=SamplingParams(max_tokens=5000, do_sample=False))
    with caplog.at_level(logging.INFO, logger="sakura.usage"):
        result = await LoadedModel(engine, registry, model).complete(request)
    assert request.params.max_tokens == 1024
    assert request.params.stop == ["\n\n\n\n"]
    assert result.finish_reason == "stop"
    [line] = [r.getMessage() for r in caplog.records if r.name == "sakura.usage"]
    assert '"finish_reason": "stop"' in line and '"completion_tokens": 24' in line
    short = GenerationRequest(prompt="abc", params=SamplingParams(max_tokens=3, do_sample=False))
    with caplog.at_level(logging.INFO, logger="sakura.usage"):
        await LoadedModel(engine, registry, model).complete(short)
    assert any("hit max_tokens=3" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_the_hosting_example_adds_an_option_and_stands_in_for_the_engine(
    hook_examples: list[types.ModuleType],
) -> None:
    [example] = [module for module in hook_examples if hasattr(module, "SlotCappedEngine")]
    registry = PluginRegistry.create(
        entry_points=False, plugins=[("slot-cap", example), ("reference", _ReferencePlugin())]
    )
    result = CliRunner().invoke(cli, ["run", "--engine", "reference", "--help"], obj=CliState(registry))
    assert result.exit_code == 0, result.output
    assert "Slot cap (my-plugin):" in result.output and "--max-slots, --max_slots INTEGER" in result.output
    [group] = registry.run_options()
    hook = registry.plugin_manager.hook
    engine = ReferenceEngine(ReferenceEngine.Options(parallel=8))
    assert hook.host_engine(engine=engine, run_options={group.model: group.model()}) is None
    capped = hook.host_engine(engine=engine, run_options={group.model: group.model(max_slots=2)})
    assert isinstance(capped, example.SlotCappedEngine) and capped.engine is engine
    await capped.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    assert capped.parallelism == 2
    await check_engine_basics(capped)
    await check_concurrent_generations(
        capped, ["将下面的日文文本翻译成中文：やる気", "将下面的日文文本翻译成中文：元気"]
    )
    await check_cancellation(capped, ["将下面的日文文本翻译成中文：やる気マンゴスキン"], max_tokens=8)
    await capped.close()


class _ReferencePlugin:
    @hookimpl
    def register_engines(self, register):
        register(ReferenceEngine)


async def test_the_server_extension_example_adds_a_route_to_a_running_server(
    hook_examples: list[types.ModuleType], tmp_path: Path
) -> None:
    import aiohttp
    from aiohttp import web

    from sakura_core.server import create_app

    [example] = [module for module in hook_examples if hasattr(module, "uptime")]
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "index.html").write_text("<!doctype html><title>uptime</title>", encoding="utf-8")
    example.__file__ = str(tmp_path / "my_plugin.py")  # the example serves the static folder beside its module
    registry = PluginRegistry.create(entry_points=False, plugins=[("uptime", example)])
    [extension] = registry.server_extensions({})
    assert extension.home == "/my-plugin/index.html"
    engine = ReferenceEngine(ReferenceEngine.Options(parallel=3))
    model = await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    runner = web.AppRunner(create_app(engine, registry, model))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/my-plugin/uptime") as response:
                assert response.status == 200
                assert await response.json() == {"model": model.id, "slots": 3}
            async with session.get(f"http://127.0.0.1:{port}/openapi.json") as response:
                assert "/my-plugin/uptime" in (await response.json())["paths"]
            async with session.get(f"http://127.0.0.1:{port}/my-plugin/index.html") as response:
                assert response.status == 200 and response.headers["Cache-Control"] == "no-cache"
                assert "<title>uptime</title>" in await response.text()
    finally:
        await runner.cleanup()
