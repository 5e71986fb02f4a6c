"""Every llama-server knob the engine takes reaches llama.cpp: read back from the context, from llama.cpp's own log,
from the process, or (GPU placement, which this machine cannot show) from the parameters handed to llama.cpp."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sakura_llamacpp import native
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.testing import collect
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.engine import ModelLoadError
from sakura_core.types import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_tokens=16)
PROMPT = "<|im_start|>user\n将下面的日文文本翻译成中文：雨の音で目が覚めた。<|im_end|>\n<|im_start|>assistant\n"

OpenEngine = Callable[..., Awaitable[LlamaCppEngine]]


@pytest.fixture(scope="module")
def head64_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with 64-wide attention heads: quantised KV-cache blocks (32 values) fit its rows."""
    folder = tmp_path_factory.mktemp("head64")
    return write_tiny_gguf(folder / "sakura-head64-v1.0-f32.gguf", hidden=128, heads=2, kv_heads=2)


@pytest.fixture
def llama_log(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """llama.cpp's log lines since the test started, joined."""
    caplog.set_level(logging.DEBUG, logger="sakura_llamacpp.llama")
    return lambda: "\n".join(r.getMessage() for r in caplog.records if r.name == "sakura_llamacpp.llama")


@pytest.fixture
async def open_engine(head64_gguf: Path) -> AsyncIterator[OpenEngine]:
    """``await open_engine(model=..., **options)``: a loaded engine, closed after the test."""
    engines: list[LlamaCppEngine] = []

    async def start(model: Path = head64_gguf, **options: Any) -> LlamaCppEngine:
        engine = LlamaCppEngine(LlamaCppOptions(**{"n_parallel": 2, "n_ctx": 256, "threads": 1, **options}))
        engines.append(engine)
        await engine.load(str(model))
        return engine

    yield start
    for engine in engines:
        await engine.close()


async def test_batch_sizes_threads_and_kv_cache_types_reach_the_context(
    open_engine: OpenEngine, llama_log: Callable[[], str]
) -> None:
    options = {"n_batch": 256, "n_ubatch": 64, "threads_batch": 2, "cache_type_k": "q8_0", "cache_type_v": "q4_0"}
    engine = await open_engine(**options)
    lib, context = engine._lib, engine._context
    assert (lib.llama_n_batch(context), lib.llama_n_ubatch(context)) == (256, 64)
    assert (lib.llama_n_threads(context), lib.llama_n_threads_batch(context)) == (1, 2)
    log = llama_log()
    assert "K (q8_0)" in log and "V (q4_0)" in log
    assert "flash_attn            = enabled" in log  # llama.cpp turns it on for the quantised V cache
    assert (await collect(engine, PROMPT, GREEDY)).last.completion_tokens == 16
    default = await open_engine(n_batch=128)
    assert default._lib.llama_n_ubatch(default._context) == 128  # --n-ubatch (512) is at most --n-batch
    assert "K (f16)" in llama_log() and "V (f16)" in llama_log()


async def test_a_bf16_kv_cache_reaches_the_context(open_engine: OpenEngine, llama_log: Callable[[], str]) -> None:
    """bf16 is a type llama-server accepts whose constant llama-cpp-python's module does not define."""
    engine = await open_engine(cache_type_k="bf16", cache_type_v="bf16")
    assert "K (bf16)" in llama_log() and "V (bf16)" in llama_log()
    assert (await collect(engine, PROMPT, GREEDY)).last.completion_tokens == 16


async def test_a_quantised_v_cache_without_flash_attention_is_one_clear_line(open_engine: OpenEngine) -> None:
    with pytest.raises(ModelLoadError) as caught:
        await open_engine(cache_type_v="q8_0", flash_attn=False)
    assert "--no-flash-attn" in str(caught.value) and "\n" not in str(caught.value)


async def test_kv_cache_types_that_do_not_fit_the_heads_say_so(tiny_gguf: Path, open_engine: OpenEngine) -> None:
    with pytest.raises(ModelLoadError) as caught:  # the tiny model's heads are 16 wide: a q8_0 block is 32
        await open_engine(model=tiny_gguf, cache_type_k="q8_0")
    assert "--cache-type-k/-v f16" in str(caught.value)


async def test_rope_options_reach_the_context_and_change_the_output(
    open_engine: OpenEngine, llama_log: Callable[[], str]
) -> None:
    plain = await collect(await open_engine(), PROMPT, GREEDY)
    scaled = await open_engine(rope_freq_base=20000.0, rope_scale=4.0)
    log = llama_log()
    assert "freq_base             = 20000.0" in log and "freq_scale            = 0.25" in log
    assert (await collect(scaled, PROMPT, GREEDY)).text != plain.text
    await open_engine(rope_scaling="yarn", rope_freq_scale=0.5, yarn_orig_ctx=512)
    assert "freq_scale            = 0.5" in llama_log()
    assert "custom YaRN scaling detected" in llama_log()


def test_context_params_carry_the_options_llama_cpp_does_not_report() -> None:
    lib = native.import_llama_cpp()
    options = LlamaCppOptions(
        kv_offload=False,
        op_offload=False,
        rope_scaling="linear",
        yarn_ext_factor=0.5,
        yarn_attn_factor=1.5,
        yarn_beta_slow=2.0,
        yarn_beta_fast=16.0,
        defrag_thold=0.2,
    )
    params = native.context_params(lib, options, native.ContextLayout(512, 4, 512, 2))
    assert (params.offload_kqv, params.op_offload) == (False, False)
    assert params.rope_scaling_type == lib.LLAMA_ROPE_SCALING_TYPE_LINEAR
    assert (params.yarn_ext_factor, params.yarn_attn_factor) == (0.5, 1.5)
    assert (params.yarn_beta_slow, params.yarn_beta_fast) == (2.0, 16.0)
    assert params.defrag_thold == pytest.approx(0.2)
    assert (params.n_ctx, params.n_seq_max, params.kv_unified) == (2048, 4, False)
    defaults = native.context_params(lib, LlamaCppOptions(), native.ContextLayout(512, 4, 512, 2))
    assert (defaults.offload_kqv, defaults.op_offload) == (True, True)
    unified = native.context_params(lib, LlamaCppOptions(kv_unified=True), native.ContextLayout(500, 4, 512, 2))
    assert (unified.n_ctx, unified.kv_unified) == (2048, True)  # one cache, as much room per sequence as a region
    assert defaults.rope_scaling_type == lib.llama_context_default_params().rope_scaling_type  # the model's


def test_gpu_placement_reaches_the_model_params() -> None:
    """No GPU here to show the split: the parameters llama.cpp is given are checked instead."""
    lib = native.import_llama_cpp()
    options = LlamaCppOptions(split_mode="row", tensor_split="3,1", main_gpu=1)
    loaded = native.model_params(lib, options, n_gpu_layers=-1)
    params = loaded.params
    assert (params.split_mode, params.main_gpu, params.n_gpu_layers) == (lib.LLAMA_SPLIT_MODE_ROW, 1, -1)
    shares = ctypes.cast(params.tensor_split, ctypes.POINTER(ctypes.c_float))
    assert [shares[i] for i in range(3)] == [3.0, 1.0, 0.0]
    assert native.model_params(lib, LlamaCppOptions(split_mode="none"), n_gpu_layers=0).params.split_mode == (
        lib.LLAMA_SPLIT_MODE_NONE
    )
    assert not native.model_params(lib, LlamaCppOptions(), n_gpu_layers=0).params.tensor_split
    too_many = ",".join(["1"] * (int(lib.llama_max_devices()) + 1))
    with pytest.raises(ModelLoadError, match="--tensor-split"):
        native.model_params(lib, LlamaCppOptions(tensor_split=too_many), n_gpu_layers=-1)


def locked_kb() -> int:
    """The memory this process has locked (VmLck), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    raise AssertionError("no VmLck line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux only)")
async def test_mmap_and_mlock_reach_the_loader(
    tmp_path: Path, open_engine: OpenEngine, llama_log: Callable[[], str]
) -> None:
    model = write_tiny_gguf(tmp_path / "sakura-lock-v1.0-f32.gguf", hidden=256, layers=4, heads=4, kv_heads=4)
    await open_engine(model=model, mmap=False)
    assert "(load_mode = none)" in llama_log()
    await open_engine(model=model, mlock=True)
    assert "(load_mode = mmap+mlock)" in llama_log()
    assert locked_kb() * 1024 >= model.stat().st_size * 0.9  # the mapped file is locked in RAM
    await open_engine(model=model, mlock=True, mmap=False)
    assert "(load_mode = mlock)" in llama_log()


async def test_no_repack_keeps_the_weights_as_stored(open_engine: OpenEngine, llama_log: Callable[[], str]) -> None:
    await open_engine()
    assert "CPU_REPACK" in llama_log()  # llama.cpp considers the repacked layouts
    repacked_lines = llama_log().count("CPU_REPACK")
    await open_engine(repack=False)
    assert llama_log().count("CPU_REPACK") == repacked_lines  # and with --no-repack it does not


async def test_numa_is_set_up_once_before_the_model_loads(
    open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = native.import_llama_cpp()
    calls: list[int] = []
    real = lib.llama_numa_init

    def numa_init(strategy: int) -> None:
        calls.append(strategy)
        real(strategy)

    monkeypatch.setattr(lib, "llama_numa_init", numa_init)
    monkeypatch.setattr(native, "_numa_done", False)
    await open_engine()
    assert calls == []  # not asked for: llama.cpp's default placement
    await open_engine(numa="distribute")
    await open_engine(numa="isolate")  # llama.cpp takes one strategy per process: the first one stays
    assert calls == [lib.GGML_NUMA_STRATEGY_DISTRIBUTE]
