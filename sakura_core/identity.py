"""Model identity from names: Sakura's file, directory, repository and Ollama tag naming conventions."""

from __future__ import annotations

import logging
import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from sakura_core.types import ModelInfo

logger = logging.getLogger(__name__)

# the separators include a space: a GGUF's general.name is written with spaces ("Sakura 14B Qwen3 v1.5")
_VERSION_RE = re.compile(
    r"^(?P<name>.+?)[-_ ]v(?P<version>\d+(?:\.\d+)+[a-z0-9]*|\d+[a-z][a-z0-9]*)(?:[-_. ](?P<quant>.+))?$",
    re.IGNORECASE,
)
_PACKAGING_SUFFIXES = {"gguf", "gptq", "awq"}
_KNOWN_SUFFIXES = (".gguf", ".bin", ".safetensors")


class ModelIdentity(BaseModel):
    """Name, version and quantisation read from a model's name. Any part may be unknown (None)."""

    model_config = ConfigDict(defer_build=True)

    base_name: str
    name: str
    version: str | None = None
    quant: str | None = None


def model_base_name(model: str) -> str:
    """The last component of a path, repository or Ollama tag, without a model file suffix.

    ``./models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf`` → ``sakura-7b-qwen2.5-v1.0-iq4xs``;
    ``onekuma/sakura-13b-lnovel-v0.9b-q2_k:latest`` → ``sakura-13b-lnovel-v0.9b-q2_k``.
    """
    text = model.replace("\\", "/").rstrip("/")
    base = PurePosixPath(text).name or text
    if ":" in base:
        head, _, tag = base.partition(":")
        base = head if tag in ("", "latest") else f"{head}-{tag}"
    for suffix in _KNOWN_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base


def parse_model_identity(model: str) -> ModelIdentity:
    """Read name, version and quant from a Sakura-style model name.

    ``sakura-13b-lnovel-v0.9b-Q4_K_M.gguf`` → name ``sakura-13b-lnovel``, version ``0.9b``, quant ``Q4_K_M``.
    """
    base = model_base_name(model)
    match = _VERSION_RE.match(base)
    if match is None:
        return ModelIdentity(base_name=base, name=base)
    quant = match.group("quant")
    if quant is not None and quant.lower() in _PACKAGING_SUFFIXES:
        quant = quant.lower() if quant.lower() != "gguf" else None
    return ModelIdentity(base_name=base, name=match.group("name"), version=match.group("version"), quant=quant)


def make_model_info(
    model: str,
    *,
    context_length: int,
    model_version: str | None = None,
    name: str | None = None,
    version: str | None = None,
    quant: str | None = None,
    metadata_name: str | None = None,
    metadata_quant: str | None = None,
    meta: dict[str, Any] | None = None,
    path: str | None = None,
) -> ModelInfo:
    """Build a ModelInfo from what the user passed to ``--model`` and what the engine read from the model.

    Precedence for the version: ``model_version`` (the ``--model-version`` option), then ``version`` (model
    metadata such as ``config.json``'s ``sakura_version``), then the name, then ``metadata_name`` (a name the
    model's metadata gives, such as a GGUF's ``general.name``; its name is taken with its version). For the
    quantisation: ``quant``, then the name, then ``metadata_quant`` (what the weights' format says). The id is the
    model's base name; when the version is not in it, ``-v{version}`` is appended, because clients find the version
    by substring. A version nothing states is not made up: the id stays the base name (and the core serves the model
    with v1.0's prompt format). The prompt format is left to the core, which chooses it from this identity.
    ``path`` is what the user passed to ``--model`` when ``model`` is the file it was resolved to.
    """
    parsed = parse_model_identity(model)
    if version is None and parsed.version is None and metadata_name:
        from_metadata = parse_model_identity(metadata_name)
        if from_metadata.version is not None:
            name, version = name or from_metadata.name, from_metadata.version
    chosen_version = model_version or version or parsed.version
    chosen_name = name or parsed.name
    if chosen_version is None:
        logger.warning(
            "cannot tell the Sakura version of %r: serving with the v1.0 prompt format; pass --model-version",
            model,
        )
    model_id = parsed.base_name
    clean_version = chosen_version.lower().removeprefix("v") if chosen_version else None
    if clean_version and clean_version[0].isdigit() and clean_version not in model_id:
        if parsed.version is not None:
            # the name states another version: state the chosen one in its place, never both
            model_id = re.sub(rf"(?i)([-_])v{re.escape(parsed.version)}", rf"\g<1>v{clean_version}", model_id, count=1)
        else:
            model_id = f"{model_id}-v{clean_version}"
    return ModelInfo(
        id=model_id,
        name=chosen_name,
        version=chosen_version,
        quant=quant or parsed.quant or metadata_quant,
        path=path or model,
        context_length=context_length,
        meta=meta,
    )
