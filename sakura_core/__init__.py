"""sakura-core: the serving framework for SakuraLLM translation models.

Plugin authors import what they need from here::

    from sakura_core import hookimpl, Engine, EngineOptions, ModelInfo, SamplingParams, Delta
"""

from sakura_core.engine import Engine, EngineError, EngineOptions, ModelLoadError
from sakura_core.hookspecs import hookimpl
from sakura_core.identity import ModelIdentity, parse_model_identity
from sakura_core.types import (
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    SamplingParams,
)

__version__ = "0.1.0"  # the distribution's version (pyproject.toml) without its epoch, 1!

__all__ = [
    "Delta",
    "Engine",
    "EngineError",
    "EngineOptions",
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
