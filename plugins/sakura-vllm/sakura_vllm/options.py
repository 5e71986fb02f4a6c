"""The vllm engine's options, and how they become vLLM engine arguments.

Every field is a ``sakura run --engine vllm`` option. The named ones are vLLM's own engine arguments under the
same names (``--tensor-parallel-size`` here is ``--tensor-parallel-size`` of ``vllm serve``); anything else
reaches vLLM through ``--vllm-arg KEY=VALUE`` or ``--vllm-args JSON``. Nothing here imports vLLM.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sakura_core.engine import EngineOptions

#: Engine arguments sakura sets itself; passing them through ``--vllm-arg`` would break the engine's contract.
RESERVED_ENGINE_ARGS = frozenset({"model", "disable_log_stats"})
#: Named options that are vLLM engine arguments with the same name, copied when set.
_DIRECT_ENGINE_ARGS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "distributed_executor_backend",
    "gpu_memory_utilization",
    "enforce_eager",
    "quantization",
    "max_model_len",
    "dtype",
    "kv_cache_dtype",
    "trust_remote_code",
    "max_num_seqs",
    "tokenizer",
    "revision",
    "download_dir",
)


class VllmOptions(EngineOptions):
    """Options of the vllm engine (vLLM's engine arguments, with vLLM's defaults unless set)."""

    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="GPUs one model is split across (tensor parallelism).",
        json_schema_extra={"aliases": ["-tp"]},
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (groups of layers), e.g. one per machine with Ray.",
        json_schema_extra={"aliases": ["-pp"]},
    )
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        None, description="How vLLM runs its workers: mp (one machine, the default) or ray (a cluster of machines)."
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0, description="Share of each GPU's memory vLLM may use, 0 to 1 (vLLM's default if unset)."
    )
    enforce_eager: bool = Field(False, description="Skip CUDA graphs / compilation: less memory, slower decoding.")
    quantization: str | None = Field(
        None, description="Quantisation method of the weights (gptq, awq, fp8, ...); default: read from the model."
    )
    use_gptq_model: bool = Field(False, description="The model is GPTQ-quantised (same as --quantization gptq).")
    use_awq_model: bool = Field(False, description="The model is AWQ-quantised (same as --quantization awq).")
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="Context length per sequence in tokens (prompt + answer); default: the model's.",
        json_schema_extra={"aliases": ["-c", "--ctx-size"]},
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = Field(
        "auto", description="Data type of weights and activations."
    )
    kv_cache_dtype: str = Field("auto", description="Data type of the KV cache (auto, fp8, fp8_e5m2, ...).")
    trust_remote_code: bool = Field(False, description="Run Python code that comes with the model (custom models).")
    max_num_seqs: int | None = Field(
        None,
        ge=1,
        description="Sequences decoded together (the server's slots); default: vLLM's.",
        json_schema_extra={"aliases": ["-np", "--parallel"]},
    )
    tokenizer: str | None = Field(None, description="Tokenizer path or repository, if not the model's.")
    revision: str | None = Field(None, description="Model revision (branch, tag or commit) on Hugging Face.")
    download_dir: str | None = Field(None, description="Where to download models from Hugging Face.")
    vllm_arg: list[str] = Field(
        default_factory=list,
        description="Any other vLLM engine argument as KEY=VALUE (repeatable); VALUE is read as JSON when it parses.",
    )
    vllm_args: str | None = Field(
        None, description="More vLLM engine arguments as a JSON object, e.g. '{\"seed\": 1}'."
    )

    @field_validator("quantization", "kv_cache_dtype")
    @classmethod
    def _lower_case(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None

    @field_validator("vllm_arg")
    @classmethod
    def _key_value_pairs(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_key_value(item)
        return value

    @field_validator("vllm_args")
    @classmethod
    def _json_object(cls, value: str | None) -> str | None:
        if value is not None:
            parse_json_object(value)
        return value

    @model_validator(mode="after")
    def _one_quantization(self) -> VllmOptions:
        chosen = {q for q, flag in (("gptq", self.use_gptq_model), ("awq", self.use_awq_model)) if flag}
        if self.quantization:
            chosen.add(self.quantization)
        if len(chosen) > 1:
            raise ValueError(f"choose one quantisation method, not {' and '.join(sorted(chosen))}")
        return self

    @property
    def effective_quantization(self) -> str | None:
        """The quantisation method after the --use-gptq-model / --use-awq-model aliases."""
        if self.use_gptq_model:
            return "gptq"
        if self.use_awq_model:
            return "awq"
        return self.quantization

    def extra_engine_args(self) -> dict[str, Any]:
        """The pass-through engine arguments (``--vllm-args`` first, then each ``--vllm-arg``), keys normalised."""
        extra: dict[str, Any] = {}
        if self.vllm_args:
            for key, value in parse_json_object(self.vllm_args).items():
                extra[normalise_key(key)] = value
        for item in self.vllm_arg:
            key, value = parse_key_value(item)
            extra[key] = value
        reserved = sorted(RESERVED_ENGINE_ARGS & extra.keys())
        if reserved:
            raise ValueError(f"--vllm-arg cannot set {', '.join(reserved)}: sakura sets it")
        return extra

    def engine_args(self, model: str) -> dict[str, Any]:
        """Keyword arguments for vLLM's ``AsyncEngineArgs``: the named options that are set, then the extras.

        A named option the user set wins over the same key in ``--vllm-arg``; unset ones leave vLLM's defaults.
        """
        # prefix caching on whatever vLLM's default for the platform: translation clients repeat their system
        # prompt and glossary in front of every request (``--vllm-arg enable_prefix_caching=false`` turns it off)
        values: dict[str, Any] = {"model": model, "disable_log_stats": True, "enable_prefix_caching": True}
        values.update(self.extra_engine_args())
        for name in _DIRECT_ENGINE_ARGS:
            value = getattr(self, name)
            if name in self.model_fields_set or (name not in values and value is not None):
                values[name] = value
        quantization = self.effective_quantization
        if quantization is not None:
            values["quantization"] = quantization
        return values


def normalise_key(key: str) -> str:
    """``--max-num-batched-tokens`` / ``max-num-batched-tokens`` → ``max_num_batched_tokens``."""
    return key.strip().lstrip("-").replace("-", "_")


def parse_value(text: str) -> Any:
    """A pass-through value: JSON when it parses (``8``, ``true``, ``{"a": 1}``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_key_value(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (normalised key, parsed value); a ValueError names the expected form."""
    key, sep, value = item.partition("=")
    key = normalise_key(key)
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {item!r} (e.g. --vllm-arg max_num_batched_tokens=8192)")
    return key, parse_value(value)


def parse_json_object(text: str) -> dict[str, Any]:
    """A JSON object of engine arguments; a ValueError says what is wrong."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object such as {"seed": 1}')
    return value
