"""Which prompt format a model reads, chosen from its identity by the formats themselves.

Every registered ``PromptFormat`` may carry ``matches(model)``: whether it is the format for a model, told from
its identity (name, version, quantisation). The most recently registered format that matches wins, so a plugin
that registers a format for a new model version is chosen with no change to any engine. Sakura's own formats
match by version number; a model no format claims is served with v1.0's format (ChatML, which every Qwen-based
model reads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sakura_core.engine import ModelLoadError
from sakura_core.prompts import PromptFormat
from sakura_core.types import ModelInfo

logger = logging.getLogger(__name__)

#: The format a model no registered format claims is served with.
FALLBACK_FORMAT = "v1.0"


class UnknownModelVersionError(ModelLoadError):
    """A ``--model-version`` that no registered prompt format claims. The message is one line for the CLI."""


def choose(formats: Iterable[PromptFormat], model: ModelInfo) -> PromptFormat:
    """The format ``model`` is served with, among ``formats`` in registration order.

    A format the engine named (``model.prompt_format``) wins; then the last registered format whose ``matches``
    says yes; then v1.0's, with a warning that names the fix.
    """
    registered = {prompt_format.name: prompt_format for prompt_format in formats}
    if model.prompt_format is not None and model.prompt_format in registered:
        return registered[model.prompt_format]
    for prompt_format in reversed(list(registered.values())):
        if prompt_format.matches is not None and prompt_format.matches(model):
            return prompt_format
    if model.version is not None:
        logger.warning(
            "no prompt format is registered for %s version %s: serving with the %s format; pass --model-version",
            model.name,
            model.version,
            FALLBACK_FORMAT,
        )
    return registered[FALLBACK_FORMAT]


def known_versions(formats: Iterable[PromptFormat]) -> list[str]:
    """The versions ``--model-version`` accepts, one per format that chooses itself (``0.9``, ``galtransl``)."""
    return [f.name.removeprefix("v") for f in formats if f.matches is not None]


def check_model_version(formats: Iterable[PromptFormat], version: str | None) -> None:
    """Raise UnknownModelVersionError when no format claims ``version`` (None: nothing to check)."""
    if version is None:
        return
    formats = list(formats)
    probe = ModelInfo(id="", name="", version=version, path="", context_length=1)
    if not any(f.matches is not None and f.matches(probe) for f in formats):
        known = ", ".join(known_versions(formats))
        raise UnknownModelVersionError(f"unknown model version {version!r}; the known versions are: {known}")
