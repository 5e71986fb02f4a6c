"""sakura-core: the serving framework for SakuraLLM translation models.

Plugin authors import what they need from here::

    from sakura_core import hookimpl, Engine, EngineOptions, ModelInfo, SamplingParams, Delta

Names are imported on first use, so that a plugin module importing ``hookimpl`` (and ``sakura --help``) does not
pay for the engine contract's models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sakura_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from sakura_core.engine import Engine, EngineError, EngineOptions, EngineUnavailableError, ModelLoadError
    from sakura_core.identity import ModelIdentity, parse_model_identity
    from sakura_core.types import Delta, FinishReason, GenerationRequest, GenerationResult, ModelInfo, SamplingParams

__version__ = "0.1.0"  # the distribution's version (pyproject.toml) without its epoch, 1!

_LAZY = {
    "Engine": "sakura_core.engine",
    "EngineError": "sakura_core.engine",
    "EngineOptions": "sakura_core.engine",
    "EngineUnavailableError": "sakura_core.engine",
    "ModelLoadError": "sakura_core.engine",
    "ModelIdentity": "sakura_core.identity",
    "parse_model_identity": "sakura_core.identity",
    "Delta": "sakura_core.types",
    "FinishReason": "sakura_core.types",
    "GenerationRequest": "sakura_core.types",
    "GenerationResult": "sakura_core.types",
    "ModelInfo": "sakura_core.types",
    "SamplingParams": "sakura_core.types",
}

__all__ = [
    "Delta",
    "Engine",
    "EngineError",
    "EngineOptions",
    "EngineUnavailableError",
    "FinishReason",
    "GenerationRequest",
    "GenerationResult",
    "ModelIdentity",
    "ModelInfo",
    "ModelLoadError",
    "SamplingParams",
    "__version__",
    "hookimpl",
    "parse_model_identity",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sakura_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
