"""Who a Transformers-format model is: Sakura's ``config.json`` fields, the quantisation, true llama-server meta."""

from __future__ import annotations

import logging
from typing import Any

from sakura_core.identity import make_model_info
from sakura_core.types import ModelInfo

logger = logging.getLogger(__name__)

#: ``config.json`` fields SakuraLLM's Transformers checkpoints carry.
SAKURA_FIELDS = ("sakura_name", "sakura_version", "sakura_quant")


def _config_value(config: Any, key: str) -> Any:
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)


def sakura_fields(config: Any) -> dict[str, str]:
    """The Sakura fields of a model config (a Transformers config object or a ``config.json`` dict) as text."""
    found: dict[str, str] = {}
    for key in SAKURA_FIELDS:
        value = _config_value(config, key)
        if value is not None and str(value).strip():
            found[key] = str(value).strip()
    return found


def quantization_method(config: Any) -> str | None:
    """The quantisation method named in the config's ``quantization_config`` (gptq, awq, fp8, ...), if any."""
    quant_config = _config_value(config, "quantization_config")
    if isinstance(quant_config, dict):
        method = quant_config.get("quant_method")
        return str(method).lower() if method else None
    method = getattr(quant_config, "quant_method", None)
    return str(getattr(method, "value", method)).lower() if method else None


def llama_server_meta(config: Any) -> dict[str, Any] | None:
    """The part of llama-server's ``meta`` that a Transformers config states truly; None when it states none.

    ``n_params`` and ``size`` (tensor bytes) and the GGUF ``vocab_type`` are left out: they describe a GGUF file.
    """
    meta: dict[str, Any] = {}
    for key, field in (
        ("n_vocab", "vocab_size"),
        ("n_ctx_train", "max_position_embeddings"),
        ("n_embd", "hidden_size"),
    ):
        value = _config_value(config, field)
        if isinstance(value, int) and value > 0:
            meta[key] = value
    return meta or None


def model_info_from_config(
    model: str,
    config: Any,
    *,
    context_length: int,
    model_version: str | None = None,
    quantization: str | None = None,
) -> ModelInfo:
    """The served identity: ``--model-version``, then ``config.json``'s Sakura fields, then the model's name.

    ``quantization`` is what the user asked vLLM for; the config's own method and the name are used otherwise.
    A model that says nothing about its version still serves: ``make_model_info`` logs a warning.
    """
    fields = sakura_fields(config)
    if not fields:
        logger.info("%s has no sakura_name/sakura_version/sakura_quant in config.json; using its name", model)
    return make_model_info(
        model,
        context_length=context_length,
        model_version=model_version,
        name=fields.get("sakura_name"),
        version=fields.get("sakura_version"),
        quant=fields.get("sakura_quant") or quantization or quantization_method(config),
        meta=llama_server_meta(config),
    )
