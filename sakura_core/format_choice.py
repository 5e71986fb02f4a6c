"""Which prompt format a model reads, chosen from its identity by the formats themselves.

Every registered ``PromptFormat`` may carry ``matches(model)``: whether it is the format for a model, told from
its identity (name, version, quantisation). The most recently registered format that matches wins, so a plugin
that registers a format for a new model version is chosen with no change to any engine. Sakura's own formats
match by version number; a model no format claims is served with v1.0's format (ChatML, which every Qwen-based
model reads).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sakura_core.types import ModelInfo

if TYPE_CHECKING:
    from sakura_core.prompts import PromptFormat

logger = logging.getLogger(__name__)

#: The format a model no registered format claims is served with.
FALLBACK_FORMAT = "v1.0"

_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?")


class UnknownModelVersionError(ValueError):
    """A ``--model-version`` that no registered prompt format claims. The message is one line for the CLI."""


def version_number(version: str | None) -> tuple[int, int] | None:
    """``"0.9b"`` → (0, 9), ``"v1.5"`` → (1, 5), ``"0.10pre1"`` → (0, 10); None when it starts with no number."""
    if version is None:
        return None
    match = _NUMBER.match(version.strip().lower().removeprefix("v"))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def is_galtransl(model: ModelInfo) -> bool:
    """A GalTransl model: its name says so, or its version is spelled ``galtransl…``."""
    version = (model.version or "").strip().lower().removeprefix("v")
    return version.startswith("galtransl") or "galtransl" in model.name.lower()


def version_between(low: tuple[int, int], below: tuple[int, int] | None = None) -> Callable[[ModelInfo], bool]:
    """A ``matches`` for Sakura versions from ``low`` up to (not including) ``below``; GalTransl models excluded."""

    def matches(model: ModelInfo) -> bool:
        number = version_number(model.version)
        if number is None or is_galtransl(model):
            return False
        return number >= low and (below is None or number < below)

    return matches


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
