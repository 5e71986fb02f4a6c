"""A loaded model's generation path: the prompt format it chooses, the context it fits requests to, its hooks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core import hookimpl
from sakura_core.format_choice import UnknownModelVersionError
from sakura_core.loaded_model import UNTIL_CONTEXT_FULL, LoadedModel, PromptTooLongError
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import CHATML_STOP, Message, PromptFormat, message_text, translation_messages_v10
from sakura_core.types import DEFAULT_MAX_TOKENS, GenerationRequest, ModelInfo, SamplingParams
from sakura_core.versions import version_between


def render_v2(messages: Sequence[Message]) -> str:
    """A made-up format for a made-up Sakura v2.0."""
    return "".join(f"[{m['role']}] {message_text(m)}\n" for m in messages) + "[assistant] "


class Version2Plugin:
    """A plugin that ships the prompt format of a new model version, and nothing else."""

    @hookimpl
    def register_prompt_formats(self, register):
        register(
            PromptFormat(
                "v2.0", render_v2, translation_messages_v10, CHATML_STOP, "Sakura v2.0", matches=version_between((2, 0))
            )
        )


def registry(*plugins: object) -> PluginRegistry:
    return PluginRegistry.create(entry_points=False, plugins=[(f"plugin{i}", p) for i, p in enumerate(plugins)])


async def loaded(model: str = "sakura-7b-qwen2.5-v1.0-iq4xs.gguf", *plugins: object, n_ctx: int = 4096) -> LoadedModel:
    return await LoadedModel.load(ReferenceEngine(ReferenceOptions(n_ctx=n_ctx)), registry(*plugins), model)


async def test_a_plugins_format_for_a_new_version_is_chosen_with_no_engine_change() -> None:
    model = await loaded("sakura-14b-v2.0-q4km.gguf", Version2Plugin())
    assert model.prompt_format.name == "v2.0"
    assert model.info.prompt_format == "v2.0"  # what /v1/models, the banner and the hooks see
    assert model.render([{"role": "user", "content": "やあ"}]) == "[user] やあ\n[assistant] "
    # the built-in formats keep their versions beside it
    assert (await loaded("sakura-14b-v1.5-q4km.gguf", Version2Plugin())).prompt_format.name == "v1.5"
    assert (await loaded("GalTransl-7B-v2.6.gguf", Version2Plugin())).prompt_format.name == "galtransl"


async def test_a_version_no_format_claims_is_served_with_v10s_format_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sakura_core.format_choice"):
        model = await loaded("sakura-14b-v2.0-q4km.gguf")
    assert model.prompt_format.name == "v1.0"
    assert "no prompt format is registered for sakura-14b version 2.0" in caplog.text


async def test_an_engine_that_names_its_format_keeps_it() -> None:
    engine = ReferenceEngine()
    info = (await engine.load("sakura-14b-v1.5-q4km.gguf")).model_copy(update={"prompt_format": "v0.9"})
    assert LoadedModel(engine, registry(), info).prompt_format.name == "v0.9"


async def test_an_unknown_model_version_is_refused_before_loading_and_names_the_known_ones() -> None:
    engine = ReferenceEngine()
    with pytest.raises(UnknownModelVersionError) as refused:
        await LoadedModel.load(engine, registry(), "model.gguf", "2.0")
    assert str(refused.value) == (
        "unknown model version '2.0'; the known versions are: 0.8, 0.9, 0.10, 1.0, 1.5, galtransl"
    )
    assert engine.model_info is None  # nothing loaded
    with_plugin = await LoadedModel.load(ReferenceEngine(), registry(Version2Plugin()), "model.gguf", "2.0")
    assert (with_plugin.info.version, with_plugin.prompt_format.name) == ("2.0", "v2.0")
    for version in ("0.9b", "v1.0", "1.1", "galtransl", "0.11"):
        await LoadedModel.load(ReferenceEngine(), registry(), "model.gguf", version)


async def test_max_tokens_has_one_default_and_one_clamp() -> None:
    model = await loaded(n_ctx=1000)
    prompt = "x" * 400  # the reference engine counts a character as a token
    assert (await model.prepare(prompt)).params.max_tokens == DEFAULT_MAX_TOKENS
    assert (await model.prepare(prompt, max_tokens=20)).params.max_tokens == 20
    assert (await model.prepare(prompt, max_tokens=10_000)).params.max_tokens == 600
    assert (await model.prepare(prompt, max_tokens=UNTIL_CONTEXT_FULL)).params.max_tokens == 600
    assert SamplingParams().max_tokens == DEFAULT_MAX_TOKENS
    with pytest.raises(PromptTooLongError, match="the prompt is 1000 tokens but the model's context is 1000 tokens"):
        await model.prepare("x" * 1000)
    with pytest.raises(PromptTooLongError, match="cannot hold more than 256000"):
        await model.prepare("x" * 256_001)  # refused by its length, before it is counted


async def test_stop_strings_are_the_clients_then_the_formats() -> None:
    model = await loaded()
    request = await model.prepare("x", {"stop": ["。", "<|im_end|>", ""]})
    assert request.params.stop == ["。", "<|im_end|>", "<|endoftext|>"]


class Lengthen:
    """A ``before_generate`` hook that puts text in front of every prompt (a glossary, say)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @hookimpl
    def before_generate(self, request: GenerationRequest, model: ModelInfo) -> None:
        request.prompt = self.text + request.prompt


async def test_a_prompt_a_hook_lengthened_is_counted_and_fitted_to_the_context_again() -> None:
    engine = ReferenceEngine(ReferenceOptions(n_ctx=100, answer_length=1000))
    model = await LoadedModel.load(engine, registry(Lengthen("y" * 50)), "sakura-v1.0.gguf")
    request = await model.prepare("x" * 10, {"do_sample": False}, max_tokens=80)
    assert request.params.max_tokens == 80
    result = await model.complete(request)
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (60, 40, "length")

    too_long = await LoadedModel.load(
        ReferenceEngine(ReferenceOptions(n_ctx=100)), registry(Lengthen("y" * 95)), "sakura-v1.0.gguf"
    )
    request = await too_long.prepare("x" * 10)
    with pytest.raises(PromptTooLongError, match="the prompt is 105 tokens but the model's context is 100"):
        await too_long.complete(request)
