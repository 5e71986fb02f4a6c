"""The prompt format of the model an engine loaded, as the kit finds it: for the default prompts and the end texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sakura_core.plugins import PluginRegistry

if TYPE_CHECKING:
    from sakura_core.engine import Engine
    from sakura_core.prompts import PromptFormat
    from sakura_core.types import ModelInfo

#: The format of models no registered format claims (ChatML, which every Qwen-based model reads).
FALLBACK_FORMAT = "v1.0"


class ModelFormatError(LookupError):
    """The loaded model's prompt format is not registered."""


def loaded_model(engine: Engine) -> ModelInfo:
    """The engine's ``model_info``; ModelFormatError when the engine was not loaded."""
    if engine.model_info is None:
        raise ModelFormatError("the engine fixture must yield a loaded engine: its model_info is None")
    return engine.model_info


def model_prompt_format(engine: Engine, registry: PluginRegistry | None = None) -> PromptFormat:
    """The registered prompt format of the engine's loaded model.

    The format the engine named in ``ModelInfo.prompt_format`` when it names one (looked up among the built-in
    formats first, without loading installed plugins, so that a broken plugin elsewhere in the environment does not
    fail tests that need only Sakura's own formats). Otherwise the format the core chooses: the most recently
    registered one whose ``matches`` accepts the model, else v1.0's. ``registry`` replaces the plugins sakura
    would load (for tests that register formats in-process).
    """
    info = loaded_model(engine)
    name = getattr(info, "prompt_format", None)
    if name:
        registries = [registry] if registry is not None else [PluginRegistry.create(entry_points=False), None]
        for each in registries:
            formats = (each or PluginRegistry.create()).prompt_formats()
            if name in formats:
                return formats[name]
        raise ModelFormatError(
            f"the model's prompt format {name!r} is not registered; register it or override conformance_prompts"
        )
    formats = (registry or PluginRegistry.create()).prompt_formats()
    chosen = _matching(list(formats.values()), info)
    if chosen is not None:
        return chosen
    if FALLBACK_FORMAT in formats:
        return formats[FALLBACK_FORMAT]
    raise ModelFormatError(f"no registered prompt format is for the model {info.id!r}; override conformance_prompts")


def _matching(formats: list[PromptFormat], info: ModelInfo) -> PromptFormat | None:
    """The most recently registered format that says it is for ``info`` (formats without ``matches`` say nothing)."""
    for prompt_format in reversed(formats):
        matches = getattr(prompt_format, "matches", None)
        if matches is not None and matches(info):
            return prompt_format
    return None
