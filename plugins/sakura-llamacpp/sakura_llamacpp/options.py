"""The llamacpp engine's own ``sakura run`` options."""

from __future__ import annotations

from pydantic import Field

from sakura_core.engine import EngineOptions

#: Parallel sequences when the user does not say: GPUs decode many sequences almost for the price of one.
DEFAULT_PARALLEL_GPU = 8
DEFAULT_PARALLEL_CPU = 4


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
        512,
        ge=1,
        description="Most tokens per decode step (prompt chunks of new requests share it with running ones); "
        "raised to --n-parallel if smaller.",
        json_schema_extra={"aliases": ["-b", "--batch-size"]},
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for decoding. Default: the CPUs this process may use.",
        json_schema_extra={"aliases": ["-t", "--n-threads"]},
    )
    flash_attn: bool | None = Field(
        None,
        description="Flash attention on or off. Default: llama.cpp decides (on where it helps).",
        json_schema_extra={"aliases": ["-fa"]},
    )
    mmap: bool = Field(True, description="Memory-map the model file (--no-mmap reads it into memory).")
    repeat_last_n: int = Field(
        64,
        ge=-1,
        description="Recent tokens the repetition, frequency and presence penalties look at (-1: the whole context).",
    )
