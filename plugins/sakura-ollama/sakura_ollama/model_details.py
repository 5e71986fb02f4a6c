"""What ``/api/show`` says about a model: llama-server style meta, context length, quantisation."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

#: llama.cpp's vocabulary types (llama_vocab_type) by GGUF tokenizer.ggml.model, as llama-server's meta reports them.
VOCAB_TYPES = {"llama": 1, "gpt2": 2, "bert": 3, "t5": 4, "rwkv": 5}
_PARAMETER_LINE = re.compile(r"^\s*(\w+)\s+(.+?)\s*$")


def model_info_of(show: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model_info`` mapping (GGUF key/values) of a show response; empty when absent."""
    info = show.get("model_info") or show.get("modelinfo") or {}
    return dict(info) if isinstance(info, Mapping) else {}


def architecture_value(info: Mapping[str, Any], key: str) -> Any:
    """``{general.architecture}.{key}`` from model_info, e.g. ``qwen2.context_length``."""
    arch = info.get("general.architecture")
    return info.get(f"{arch}.{key}") if arch else None


def modelfile_parameters(show: Mapping[str, Any]) -> dict[str, list[str]]:
    """The Modelfile's PARAMETER lines (show's ``parameters`` text), each name with its values in order."""
    found: dict[str, list[str]] = {}
    for line in str(show.get("parameters") or "").splitlines():
        match = _PARAMETER_LINE.match(line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip('"'))
    return found


def context_length(requested: int | None, show: Mapping[str, Any], default: int) -> int:
    """Context per sequence: ``--num-ctx``, else the Modelfile's num_ctx, else ``default`` capped at training."""
    if requested is not None:
        return requested
    values = modelfile_parameters(show).get("num_ctx")
    if values:
        try:
            return int(values[-1])
        except ValueError:
            logger.warning("ignoring the Modelfile's num_ctx %r", values[-1])
    trained = architecture_value(model_info_of(show), "context_length")
    return min(default, int(trained)) if isinstance(trained, int) and trained > 0 else default


def quantization(show: Mapping[str, Any]) -> str | None:
    """The quantisation level Ollama reports (``Q4_K_M``), None when unknown."""
    details = show.get("details") or {}
    level = details.get("quantization_level") if isinstance(details, Mapping) else None
    return str(level) if level and str(level).lower() != "unknown" else None


def _tensor_bytes(tensors: Sequence[Mapping[str, Any]]) -> int | None:
    """Sum of the tensors' data sizes from their GGML types and shapes; None when one type is unknown."""
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:
        return None
    total = 0
    for tensor in tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[str(tensor["type"]).upper()]]
            elements = math.prod(int(n) for n in tensor["shape"])
        except (KeyError, TypeError, ValueError):
            return None
        total += elements // block * type_size
    return total


def llama_server_meta(show: Mapping[str, Any]) -> dict[str, Any] | None:
    """llama-server's ``meta`` from true values only: each key present only when Ollama reported it.

    ``size`` (the sum of tensor bytes) needs the tensor list of a verbose show and the ``gguf`` package for the
    sizes of GGML types; without them it is left out rather than guessed.
    """
    info = model_info_of(show)
    meta: dict[str, Any] = {}
    kind = info.get("tokenizer.ggml.model")
    if kind in VOCAB_TYPES:
        meta["vocab_type"] = VOCAB_TYPES[kind]
    tokens = info.get("tokenizer.ggml.tokens")
    vocab_size = len(tokens) if tokens else architecture_value(info, "vocab_size")
    if isinstance(vocab_size, int) and vocab_size > 0:
        meta["n_vocab"] = vocab_size
    for meta_key, info_key in (("n_ctx_train", "context_length"), ("n_embd", "embedding_length")):
        value = architecture_value(info, info_key)
        if isinstance(value, int):
            meta[meta_key] = value
    parameters = info.get("general.parameter_count")
    if isinstance(parameters, int) and parameters > 0:
        meta["n_params"] = parameters
    tensors = show.get("tensors")
    if isinstance(tensors, list) and tensors:
        size = _tensor_bytes(tensors)
        if size is not None:
            meta["size"] = size
    return meta or None
