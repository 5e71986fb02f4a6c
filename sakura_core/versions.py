"""Sakura model versions: what a ``PromptFormat.matches`` reads from a model's identity."""

from __future__ import annotations

import re
from collections.abc import Callable

from sakura_core.types import ModelInfo

_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?")


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
