"""The llamacpp engine's own ``sakura run`` options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sakura_core.engine import EngineOptions

#: Parallel sequences when the user does not say: GPUs decode many sequences almost for the price of one.
DEFAULT_PARALLEL_GPU = 8
DEFAULT_PARALLEL_CPU = 4

#: KV-cache element types llama-server accepts for -ctk/-ctv (quantised V needs flash attention).
KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
SplitMode = Literal["none", "layer", "row", "tensor"]
NumaStrategy = Literal["distribute", "isolate", "numactl"]
RopeScaling = Literal["none", "linear", "yarn"]


class LlamaCppOptions(EngineOptions):
    """Options of the llama.cpp engine, spelled like the original server and llama-server where they exist."""

    n_gpu_layers: int | None = Field(
        None,
        description="Layers to offload to the GPU (-1: all). Default: all when this llama-cpp-python build can "
        "offload to a GPU, else 0.",
        json_schema_extra={"aliases": ["-ngl", "--gpu-layers"]},
    )
    use_gpu: bool = Field(False, description="Offload all layers to the GPU (the original server's switch).")
    n_ctx: int = Field(
        2048,
        ge=64,
        description="Context per sequence, in tokens (prompt plus answer).",
        json_schema_extra={"aliases": ["-c", "--ctx-size"]},
    )
    n_parallel: int | None = Field(
        None,
        ge=1,
        le=256,
        description=f"Sequences decoded together (each with its own --n-ctx). Default: {DEFAULT_PARALLEL_GPU} with "
        f"a GPU, {DEFAULT_PARALLEL_CPU} on the CPU.",
        json_schema_extra={"aliases": ["-np", "--parallel"]},
    )
    n_batch: int = Field(
        2048,
        ge=1,
        description="Most tokens per decode step (prompt chunks of new requests share it with running ones); "
        "raised to --n-parallel if smaller. Larger steps mean fewer extra passes for the running sequences.",
        json_schema_extra={"aliases": ["-b", "--batch-size"]},
    )
    n_ubatch: int = Field(
        512,
        ge=1,
        description="Most tokens llama.cpp computes at once within a step (the physical batch); at most --n-batch.",
        json_schema_extra={"aliases": ["-ub", "--ubatch-size"]},
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for decoding. Default: the CPUs this process may use.",
        json_schema_extra={"aliases": ["-t", "--n-threads"]},
    )
    threads_batch: int | None = Field(
        None,
        ge=1,
        description="CPU threads for prompt processing. Default: as --threads.",
        json_schema_extra={"aliases": ["-tb", "--threads-batch"]},
    )
    flash_attn: bool | None = Field(
        None,
        description="Flash attention on or off. Default: llama.cpp decides (on where it helps).",
        json_schema_extra={"aliases": ["-fa"]},
    )
    cache_type_k: KvCacheType = Field(
        "f16",
        description="KV cache type of K (q8_0 halves the cache's memory).",
        json_schema_extra={"aliases": ["-ctk"]},
    )
    cache_type_v: KvCacheType = Field(
        "f16",
        description="KV cache type of V; a quantised type needs flash attention (llama.cpp turns it on).",
        json_schema_extra={"aliases": ["-ctv"]},
    )
    kv_offload: bool = Field(
        True,
        description="Keep the KV cache on the GPU with the layers (--no-kv-offload: in RAM).",
        json_schema_extra={"aliases": ["-kvo/-nkvo"]},
    )
    cache_prompt: bool = Field(
        True,
        description="Reuse the longest cached prefix of a prompt (a finished request's KV cells stay in its slot).",
    )
    cache_ram: int = Field(
        8192,
        ge=-1,
        description="Host memory, in MiB, for prompts saved from the slots' KV cells when a slot drops them, restored "
        "when a later prompt shares a long enough prefix (0: off, -1: no limit).",
        json_schema_extra={"aliases": ["-cram"]},
    )
    share_prompt_cache: bool = Field(
        True,
        description="Let a prompt take its prefix from any other slot's cells, busy or idle, instead of decoding it.",
    )
    kv_unified: bool = Field(
        False,
        description="One KV cache for all sequences: slots share a prefix's cells without copying them, but every "
        "sequence's attention then spans every slot's cells (slower on the CPU). Default: a region per sequence, "
        "a shared prefix copied region to region.",
        json_schema_extra={"aliases": ["-kvu"]},
    )
    slot_prompt_similarity: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Part of a prompt a free slot's cache must share to be chosen for it; else a slot next to "
        "the busy ones is, the least recently used of those (0: always that way).",
        json_schema_extra={"aliases": ["-sps"]},
    )
    split_mode: SplitMode = Field(
        "layer",
        description="How to split the model over several GPUs: by layer, by row, by tensor, or none (one GPU).",
        json_schema_extra={"aliases": ["-sm"]},
    )
    tensor_split: str | None = Field(
        None,
        description="Share of the model for each GPU, comma-separated proportions such as 3,1.",
        json_schema_extra={"aliases": ["-ts"]},
    )
    main_gpu: int = Field(
        0,
        ge=0,
        description="The GPU for the whole model with --split-mode none, for intermediate results with row.",
        json_schema_extra={"aliases": ["-mg"]},
    )
    mmap: bool = Field(True, description="Memory-map the model file (--no-mmap reads it into memory).")
    mlock: bool = Field(False, description="Lock the model in RAM so that the system never swaps it out.")
    numa: NumaStrategy | None = Field(None, description="NUMA placement of llama.cpp's threads (many-socket CPUs).")
    repack: bool = Field(True, description="Repack weights into the CPU's faster layouts (--no-repack: as stored).")
    op_offload: bool = Field(
        True, description="Offload host tensor operations to the GPU (--no-op-offload: run them where the data is)."
    )
    rope_scaling: RopeScaling | None = Field(None, description="RoPE scaling method. Default: the model's.")
    rope_scale: float | None = Field(
        None, gt=0.0, description="RoPE context scaling factor: expands the context N times (sets --rope-freq-scale)."
    )
    rope_freq_base: float | None = Field(None, gt=0.0, description="RoPE base frequency. Default: the model's.")
    rope_freq_scale: float | None = Field(
        None, gt=0.0, description="RoPE frequency scaling factor (1/N expands the context N times)."
    )
    yarn_orig_ctx: int | None = Field(None, ge=0, description="YaRN: the model's original context size.")
    yarn_ext_factor: float | None = Field(None, description="YaRN: extrapolation mix factor (0: interpolation only).")
    yarn_attn_factor: float | None = Field(None, description="YaRN: attention magnitude scale.")
    yarn_beta_slow: float | None = Field(None, description="YaRN: high correction dimension.")
    yarn_beta_fast: float | None = Field(None, description="YaRN: low correction dimension.")
    defrag_thold: float | None = Field(
        None,
        description="KV cache defragmentation threshold (passed on; newer llama.cpp defragments by itself).",
        json_schema_extra={"aliases": ["-dt"]},
    )
    repeat_last_n: int = Field(
        64,
        ge=-1,
        description="Recent tokens the repetition, frequency and presence penalties look at (-1: the whole context).",
    )

    @field_validator("tensor_split")
    @classmethod
    def _proportions(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [part for part in value.replace("/", ",").split(",") if part.strip()]
        try:
            shares = [float(part) for part in parts]
        except ValueError:
            raise ValueError("give comma-separated numbers, such as 3,1") from None
        if not shares or any(share < 0 for share in shares) or sum(shares) <= 0:
            raise ValueError("give comma-separated non-negative numbers, not all zero, such as 3,1")
        return ",".join(f"{share:g}" for share in shares)

    def tensor_shares(self) -> list[float]:
        """``tensor_split`` as numbers (empty: llama.cpp splits by free memory)."""
        return [float(part) for part in self.tensor_split.split(",")] if self.tensor_split else []
