"""Plugins: in-process registration, hooks around generation, installed plugins found through entry points."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from click.testing import CliRunner
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core import hookimpl
from sakura_core.cli import cli
from sakura_core.engine import Engine, EngineError
from sakura_core.engine_command import CliState
from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import LOAD_PLUGINS_ENV, PluginFailure, PluginRegistry, UnknownEngineError
from sakura_core.prompts import PromptFormat, message_text, render_chatml, translation_messages_v09
from sakura_core.self_check import self_check
from sakura_core.types import Delta, GenerationRequest, GenerationResult, ModelInfo, SamplingParams

ECHO_DISTRIBUTION = "sakura-echo-plugin"


class RecordingEngine(ReferenceEngine):
    """The reference engine under another name, remembering every prompt it was asked to continue."""

    name = "recording"
    description = "records prompts"

    def __init__(self, options: ReferenceOptions | None = None) -> None:
        super().__init__(options)
        self.prompts: list[str] = []

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        self.prompts.append(prompt)
        return super().generate(prompt, params)


def render_plain(messages: Sequence[dict[str, Any]]) -> str:
    return "".join(f"{m['role']}: {message_text(m)}\n" for m in messages) + "assistant: "


PLAIN_FORMAT = PromptFormat("plain", render_plain, translation_messages_v09, ("\n",), "role: text lines")


class HookPlugin:
    """An in-process plugin implementing every hook; it records what the observing hooks saw."""

    def __init__(self, marker: str = "\n术语") -> None:
        self.marker = marker
        self.before: list[tuple[str, ModelInfo]] = []
        self.results: list[GenerationResult] = []
        self.messages: list[Any] = []

    @hookimpl
    def register_engines(self, register: Callable[[type[Engine]], None]) -> None:
        register(RecordingEngine)

    @hookimpl
    def register_prompt_formats(self, register: Callable[[PromptFormat], None]) -> None:
        register(PLAIN_FORMAT)

    @hookimpl
    def before_generate(self, request: GenerationRequest, model: ModelInfo) -> None:
        self.before.append((request.prompt, model))
        self.messages.append(request.messages)
        request.prompt += self.marker

    @hookimpl
    def after_generate(self, request: GenerationRequest, result: GenerationResult, model: ModelInfo) -> None:
        self.results.append(result)


@pytest.fixture
def plugin() -> HookPlugin:
    return HookPlugin()


@pytest.fixture
def registry(plugin: HookPlugin) -> PluginRegistry:
    return PluginRegistry.create(entry_points=False, plugins=[("test-plugin", plugin)])


@pytest.fixture
async def engine() -> RecordingEngine:
    engine = RecordingEngine(ReferenceOptions(answer_length=8, token_delay=0.001))
    await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    return engine


def model_of(engine: Engine) -> ModelInfo:
    assert engine.model_info is not None
    return engine.model_info


# ------------------------------------------------------------------------------------------ in-process plugins


def test_in_process_plugin_registers_its_engine_and_prompt_format(registry: PluginRegistry) -> None:
    engines = registry.engines()
    assert set(engines) == {"recording"}
    assert engines["recording"].engine_class is RecordingEngine
    assert engines["recording"].plugin == "test-plugin"
    assert engines["recording"].distribution is None
    formats = registry.prompt_formats()
    assert {"v0.8", "v0.9", "v0.10", "v1.0", "galtransl", "plain"} <= set(formats)
    assert registry.prompt_format("plain").render([{"role": "user", "content": "你好"}]) == "user: 你好\nassistant: "


def test_a_later_prompt_format_replaces_one_of_the_same_name() -> None:
    class Override:
        @hookimpl
        def register_prompt_formats(self, register: Callable[[PromptFormat], None]) -> None:
            register(PromptFormat("v1.0", render_plain, translation_messages_v09, (), "plain v1.0"))

    registry = PluginRegistry.create(entry_points=False, plugins=[("override", Override())])
    assert registry.prompt_format("v1.0").description == "plain v1.0"
    assert registry.prompt_format("v0.9").render is render_chatml


def test_unknown_prompt_format_lists_registered_ones(registry: PluginRegistry) -> None:
    with pytest.raises(KeyError, match=r"unknown prompt format 'nope' \(registered: galtransl, plain, v0\.10"):
        registry.prompt_format("nope")


async def test_before_generate_rewrites_the_prompt_the_engine_sees(
    registry: PluginRegistry, plugin: HookPlugin, engine: RecordingEngine
) -> None:
    messages = [{"role": "user", "content": "原文"}]
    request = GenerationRequest(prompt="第一行\n原文", params=SamplingParams(do_sample=False), messages=messages)
    model = LoadedModel(engine, registry, model_of(engine))
    result = await model.complete(request)
    assert plugin.before == [("第一行\n原文", model.info)]  # the engine's identity, with the format it is served with
    assert model.info.prompt_format == "v1.0"
    assert plugin.messages == [messages]
    assert engine.prompts == ["第一行\n原文\n术语"]
    # the reference engine cycles through the prompt's last line: the rewritten one
    assert result.text == "术语术语术语术语"


async def test_before_generate_may_change_sampling(registry: PluginRegistry, engine: RecordingEngine) -> None:
    class ShortAnswers:
        @hookimpl
        def before_generate(self, request: GenerationRequest, model: ModelInfo) -> None:
            request.params = request.params.model_copy(update={"max_tokens": 3})

    registry.register(ShortAnswers(), "short-answers")
    result = await LoadedModel(engine, registry, model_of(engine)).complete(GenerationRequest(prompt="abcdef"))
    assert (result.completion_tokens, result.finish_reason) == (3, "length")


async def test_before_generate_hooks_run_last_registered_first(engine: RecordingEngine) -> None:
    first, second = HookPlugin("<first>"), HookPlugin("<second>")
    registry = PluginRegistry.create(entry_points=False, plugins=[("first", first), ("second", second)])
    await LoadedModel(engine, registry, model_of(engine)).complete(GenerationRequest(prompt="x"))
    assert engine.prompts == ["x<second><first>"]


async def test_after_generate_observes_text_counts_and_timing(
    registry: PluginRegistry, plugin: HookPlugin, engine: RecordingEngine
) -> None:
    params = SamplingParams(do_sample=False, max_tokens=5)
    request = GenerationRequest(prompt="ab", params=params)
    deltas = [delta async for delta in LoadedModel(engine, registry, model_of(engine)).stream(request)]
    [result] = plugin.results
    assert result.text == "".join(delta.text for delta in deltas) == "术语术语术"
    assert result.prompt_tokens == len("ab\n术语")
    assert result.completion_tokens == 5
    assert result.finish_reason == "length"
    assert result.time_to_first_token is not None and 0 <= result.time_to_first_token <= result.seconds


async def test_after_generate_sees_cancelled_when_the_stream_is_closed_early(
    registry: PluginRegistry, plugin: HookPlugin, engine: RecordingEngine
) -> None:
    stream = LoadedModel(engine, registry, model_of(engine)).stream(GenerationRequest(prompt="abc"))
    first = await anext(stream)
    await stream.aclose()
    [result] = plugin.results
    assert result.finish_reason == "cancelled"
    assert result.text == first.text
    assert result.completion_tokens == 1
    assert engine.active_generations == 0


async def test_after_generate_sees_cancelled_when_the_task_is_cancelled(
    registry: PluginRegistry, plugin: HookPlugin
) -> None:
    engine = RecordingEngine(ReferenceOptions(token_delay=0.05))
    await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in LoadedModel(engine, registry, model_of(engine)).stream(GenerationRequest(prompt="abc")):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [result] = plugin.results
    assert result.finish_reason == "cancelled"
    assert 1 <= result.completion_tokens < 24
    assert engine.active_generations == 0


async def test_after_generate_is_called_when_the_caller_is_cancelled_while_the_stream_closes(
    registry: PluginRegistry, plugin: HookPlugin, engine: RecordingEngine
) -> None:
    # a disconnecting client is seen twice: its failed write closes the stream, then its handler is cancelled
    stream = LoadedModel(engine, registry, model_of(engine)).stream(GenerationRequest(prompt="abc"))
    await anext(stream)
    closing = asyncio.ensure_future(stream.aclose())
    await asyncio.sleep(0)  # the close has begun and waits for the engine's stream
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    [result] = plugin.results
    assert result.finish_reason == "cancelled"


async def test_after_generate_sees_error_when_the_engine_fails(registry: PluginRegistry, plugin: HookPlugin) -> None:
    engine = RecordingEngine(ReferenceOptions(fail_on="术语"))
    await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    with pytest.raises(EngineError, match="asked to fail"):
        await LoadedModel(engine, registry, model_of(engine)).complete(GenerationRequest(prompt="abc"))
    [result] = plugin.results
    assert result.finish_reason == "error"


def test_a_plugin_whose_hook_raises_is_reported_and_the_others_still_register(plugin: HookPlugin) -> None:
    class Failing:
        @hookimpl
        def register_engines(self, register: Callable[[type[Engine]], None]) -> None:
            raise RuntimeError("no GPU driver")

    registry = PluginRegistry.create(entry_points=False, plugins=[("failing", Failing()), ("test-plugin", plugin)])
    assert set(registry.engines()) == {"recording"}
    assert registry.failures == [PluginFailure("failing", None, "RuntimeError: no GPU driver")]


def test_unknown_engine_lists_engines_and_the_pip_install_hint(registry: PluginRegistry) -> None:
    with pytest.raises(UnknownEngineError) as unknown:
        registry.engine("nope")
    assert str(unknown.value) == (
        "unknown engine 'nope' (installed: recording); engines can be added in a sakura checkout: "
        "pip install ./plugins/sakura-llamacpp; pip install ./plugins/sakura-ollama; "
        "pip install './plugins/sakura-vllm[gpu]'"
    )
    with pytest.raises(UnknownEngineError) as missing:
        registry.engine("vllm")
    assert str(missing.value) == (
        "unknown engine 'vllm' (installed: recording); install it in a sakura checkout: "
        "pip install './plugins/sakura-vllm[gpu]'"
    )
    with pytest.raises(UnknownEngineError, match=r"\(installed: none\)"):
        PluginRegistry.create(entry_points=False).engine("llamacpp")


# -------------------------------------------------------------------------------- installed plugins (entry points)


@pytest.fixture
def all_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)


@pytest.mark.usefixtures("all_plugins")
def test_an_installed_plugin_is_found_through_its_entry_point() -> None:
    registry = PluginRegistry.create()
    echo = registry.engine("echo")
    assert echo.engine_class.__module__ == "sakura_echo.engine"
    assert echo.plugin == "echo"
    assert echo.distribution == ECHO_DISTRIBUTION
    assert echo.version == importlib.metadata.version(ECHO_DISTRIBUTION)


@pytest.mark.usefixtures("all_plugins")
def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load() -> None:
    registry = PluginRegistry.create()
    broken = [failure for failure in registry.failures if failure.name == "broken"]
    assert broken == [
        PluginFailure(
            "broken", ECHO_DISTRIBUTION, "ImportError: sakura-echo-plugin's 'broken' entry point fails on purpose"
        )
    ]
    assert "echo" in registry.engines()
    assert "v1.0" in registry.prompt_formats()


@pytest.mark.parametrize(
    ("wanted", "echo_loaded", "broken_tried"),
    [("echo", True, False), ("broken", False, True), (" echo , broken ", True, True), ("", False, False)],
)
def test_sakura_load_plugins_chooses_the_entry_points_loaded(
    monkeypatch: pytest.MonkeyPatch, wanted: str, echo_loaded: bool, broken_tried: bool
) -> None:
    monkeypatch.setenv(LOAD_PLUGINS_ENV, wanted)
    registry = PluginRegistry.create()
    engines = registry.engines()
    assert ("echo" in engines) is echo_loaded
    assert set(engines) <= {"echo"}  # other installed plugins (llamacpp, ...) were not asked for
    assert any(failure.name == "broken" for failure in registry.failures) is broken_tried
    assert "v1.0" in registry.prompt_formats()  # built-in plugins always load


@pytest.mark.usefixtures("all_plugins")
async def test_the_installed_echo_engine_serves_through_the_generation_path() -> None:
    registry = PluginRegistry.create()
    engine_class = registry.engine("echo").engine_class
    engine = engine_class(engine_class.Options.model_validate({"parallel": 1}))
    try:
        model = await engine.load("sakura-echo-v0.9")
        assert (model.id, model.version, registry.prompt_format_for(model).name) == ("sakura-echo-v0.9", "0.9", "v0.9")
        check = await self_check(LoadedModel(engine, registry, model))
        assert (check.output, check.passed) == ("やる気マンゴスキン", False)
        assert engine.active_generations == 0
    finally:
        await engine.close()


@pytest.mark.usefixtures("all_plugins")
def test_sakura_engines_shows_the_installed_plugin_and_the_broken_one() -> None:
    result = CliRunner().invoke(cli, ["engines"], obj=CliState(PluginRegistry.create()))
    assert result.exit_code == 0, result.output
    version = importlib.metadata.version(ECHO_DISTRIBUTION)
    [echo_line] = [line for line in result.output.splitlines() if line.startswith("echo ")]
    assert f"{ECHO_DISTRIBUTION} {version}" in echo_line
    assert "Echoes the source text back" in echo_line
    assert f"failed: plugin broken ({ECHO_DISTRIBUTION}): ImportError:" in result.output


def test_importing_the_plugin_does_not_import_its_backend() -> None:
    code = (
        "import sys, asyncio, sakura_echo\n"
        "print('sakura_echo.backend' in sys.modules)\n"
        "from sakura_echo.engine import EchoEngine\n"
        "asyncio.run(EchoEngine().load('sakura-echo-v1.0'))\n"
        "print('sakura_echo.backend' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "True"]
