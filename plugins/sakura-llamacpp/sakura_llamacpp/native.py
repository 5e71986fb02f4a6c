"""The llama.cpp model and context through llama-cpp-python's low-level bindings (``llama_cpp.llama_cpp``).

Everything here imports ``llama_cpp`` lazily; ``import_llama_cpp`` turns a missing or broken install into a
one-line ModelLoadError. llama.cpp's own log goes to the ``sakura_llamacpp.llama`` logger at debug level, and its
last lines are kept to explain a failed load.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sakura_core.engine import EngineError, ModelLoadError
from sakura_llamacpp.file_types import quant_name
from sakura_llamacpp.options import LlamaCppOptions

logger = logging.getLogger(__name__)
llama_logger = logging.getLogger("sakura_llamacpp.llama")

CPU_INSTALL = "pip install -U llama-cpp-python"
CUDA_INSTALL = 'CMAKE_ARGS="-DGGML_CUDA=on" pip install -U --force-reinstall --no-cache-dir llama-cpp-python'
_UNKNOWN_ARCH_RE = re.compile(r"unknown model architecture: '([^']*)'")

_setup_lock = threading.Lock()
_log_lines: collections.deque[str] = collections.deque(maxlen=64)
_log_partial: list[str] = []
_log_callback: Any = None  # the ctypes callback must stay referenced for as long as llama.cpp may call it
_backend_ready = False


def import_llama_cpp() -> ModuleType:
    """``llama_cpp.llama_cpp`` (the low-level bindings), set up once: backend initialised, log captured."""
    global _backend_ready
    try:
        import llama_cpp
        from llama_cpp import llama_cpp as lib
    except ImportError as exc:
        raise ModelLoadError(
            f"llama-cpp-python is not installed or does not load ({exc}): {CPU_INSTALL} (for CUDA: {CUDA_INSTALL})"
        ) from None
    with _setup_lock:
        if not _backend_ready:
            lib.llama_backend_init()
            _backend_ready = True
        _capture_log(lib)
    del llama_cpp
    return lib


def llama_cpp_version() -> str:
    """The installed llama-cpp-python's version, or ``unknown``."""
    try:
        import llama_cpp

        return str(llama_cpp.__version__)
    except Exception:
        return "unknown"


def _capture_log(lib: ModuleType) -> None:
    """Route llama.cpp's log into Python logging (idempotent; llama_cpp's import installs its own printer)."""
    global _log_callback
    if _log_callback is None:

        def on_log(level: int, text: bytes | None, user_data: ctypes.c_void_p) -> None:
            piece = (text or b"").decode("utf-8", errors="replace")
            _log_partial.append(piece)
            if piece.endswith("\n"):
                line = "".join(_log_partial).rstrip("\n")
                _log_partial.clear()
                _log_lines.append(line)
                llama_logger.debug("%s", line)

        _log_callback = lib.llama_log_callback(on_log)
    lib.llama_log_set(_log_callback, ctypes.c_void_p(0))


def recent_log() -> list[str]:
    """llama.cpp's log lines since the last ``clear_log`` (the last 64 of them)."""
    return list(_log_lines)


def clear_log() -> None:
    """Forget the kept log lines, before an operation whose failure the log will explain."""
    _log_lines.clear()


@dataclass
class LoadedModel:
    """A loaded llama.cpp model and its vocabulary (both owned here; free with ``free``)."""

    lib: ModuleType
    model: Any
    vocab: Any
    path: Path

    def free(self) -> None:
        """Release the model's memory. The object is unusable afterwards."""
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None
            self.vocab = None


_numa_done = False


#: ggml enum values llama-cpp-python's module does not define (from ggml.h; ggml never renumbers its types).
MISSING_CONSTANTS = {"GGML_TYPE_BF16": 30}


def constant(lib: ModuleType, prefix: str, choice: str) -> int:
    """llama.cpp's enum value for an option's choice: ``GGML_TYPE_`` and ``q8_0`` give ``GGML_TYPE_Q8_0`` (the
    options' Literal types list the choices)."""
    name = prefix + choice.upper()
    value = getattr(lib, name, None)
    return int(value if value is not None else MISSING_CONSTANTS[name])


def init_numa(lib: ModuleType, strategy: str | None) -> None:
    """Apply the NUMA strategy (once per process, before the first model is loaded, as llama.cpp requires)."""
    global _numa_done
    if strategy is None or _numa_done:
        return
    with _setup_lock:
        if not _numa_done:
            lib.llama_numa_init(constant(lib, "GGML_NUMA_STRATEGY_", strategy))
            _numa_done = True


@dataclass
class ModelParams:
    """``llama_model_params`` and the C array its ``tensor_split`` points to (keep both until the load returns)."""

    params: Any
    tensor_split: Any = None


def model_params(lib: ModuleType, options: LlamaCppOptions, *, n_gpu_layers: int) -> ModelParams:
    """The load parameters ``options`` ask for: GPU layers and placement, memory mapping and locking, repacking."""
    params = lib.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    if options.mlock:
        params.load_mode = lib.LLAMA_LOAD_MODE_MMAP_MLOCK if options.mmap else lib.LLAMA_LOAD_MODE_MLOCK
    else:
        params.load_mode = lib.LLAMA_LOAD_MODE_MMAP if options.mmap else lib.LLAMA_LOAD_MODE_NONE
    params.split_mode = constant(lib, "LLAMA_SPLIT_MODE_", options.split_mode)
    params.main_gpu = options.main_gpu
    params.use_extra_bufts = options.repack
    result = ModelParams(params)
    shares = options.tensor_shares()
    if shares:
        devices = int(lib.llama_max_devices())
        if len(shares) > devices:
            raise ModelLoadError(f"--tensor-split gives {len(shares)} shares; this llama.cpp handles {devices} GPUs")
        result.tensor_split = (ctypes.c_float * devices)(*shares)
        params.tensor_split = result.tensor_split
    return result


def load_model(lib: ModuleType, path: Path, options: LlamaCppOptions, *, n_gpu_layers: int) -> LoadedModel:
    """Load the GGUF at ``path``; a failure becomes a one-line ModelLoadError saying what to do."""
    init_numa(lib, options.numa)
    params = model_params(lib, options, n_gpu_layers=n_gpu_layers)
    clear_log()
    model = lib.llama_model_load_from_file(str(path).encode(), params.params)
    if not model:
        raise ModelLoadError(explain_load_failure(path, recent_log()))
    return LoadedModel(lib, model, lib.llama_model_get_vocab(model), path)


def explain_load_failure(path: Path, log: list[str]) -> str:
    """One line telling the user why llama.cpp refused ``path`` and what to do, from llama.cpp's log."""
    text = "\n".join(log)
    unknown = _UNKNOWN_ARCH_RE.search(text)
    if unknown is not None:
        return (
            f"unknown model architecture: '{unknown.group(1)}': this llama-cpp-python ({llama_cpp_version()}) is "
            f"too old for {path.name}; upgrade it: {CPU_INSTALL} (for CUDA: {CUDA_INSTALL})"
        )
    errors = [line.strip() for line in log if "error" in line.lower() or "failed" in line.lower()]
    reason = errors[-1] if errors else "see --log-level debug for llama.cpp's log"
    return f"llama.cpp could not load {path.name}: {reason}"


@dataclass(frozen=True)
class ContextLayout:
    """The context's shape, decided by the engine from the options and the machine."""

    n_ctx_per_seq: int
    n_parallel: int
    n_batch: int
    threads: int


def context_params(lib: ModuleType, options: LlamaCppOptions, layout: ContextLayout) -> Any:
    """``llama_context_params`` for one KV-cache region of ``n_ctx_per_seq`` cells per sequence."""
    params = lib.llama_context_default_params()
    # llama.cpp rounds a sequence's region up to 256 cells; the unified cache gets the same room per sequence
    params.n_ctx = -(-layout.n_ctx_per_seq // 256) * 256 * layout.n_parallel
    params.n_batch = layout.n_batch
    params.n_ubatch = min(layout.n_batch, options.n_ubatch)
    params.n_seq_max = layout.n_parallel
    params.n_threads = layout.threads
    params.n_threads_batch = options.threads_batch or layout.threads
    params.flash_attn_type = {
        None: lib.LLAMA_FLASH_ATTN_TYPE_AUTO,
        True: lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        False: lib.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }[options.flash_attn]
    params.type_k = constant(lib, "GGML_TYPE_", options.cache_type_k)
    params.type_v = constant(lib, "GGML_TYPE_", options.cache_type_v)
    params.offload_kqv = options.kv_offload
    params.op_offload = options.op_offload
    if options.rope_scaling is not None:
        params.rope_scaling_type = constant(lib, "LLAMA_ROPE_SCALING_TYPE_", options.rope_scaling)
    if options.rope_freq_base is not None:
        params.rope_freq_base = options.rope_freq_base
    if options.rope_scale is not None:  # as llama-server: --rope-scale N is --rope-freq-scale 1/N
        params.rope_freq_scale = 1.0 / options.rope_scale
    if options.rope_freq_scale is not None:
        params.rope_freq_scale = options.rope_freq_scale
    for name in ("yarn_orig_ctx", "yarn_ext_factor", "yarn_attn_factor", "yarn_beta_slow", "yarn_beta_fast"):
        value = getattr(options, name)
        if value is not None:
            setattr(params, name, value)
    if options.defrag_thold is not None:
        params.defrag_thold = options.defrag_thold
    # unified: cells can belong to several sequences (the decode loop keeps each within its share); else a KV
    # region per sequence, which no other sequence can take and whose attention spans only its own cells
    params.kv_unified = options.kv_unified
    params.no_perf = True
    return params


def create_context(loaded: LoadedModel, options: LlamaCppOptions, layout: ContextLayout) -> Any:
    """The decoding context; a failure becomes a one-line ModelLoadError saying what to do."""
    if options.flash_attn is False and options.cache_type_v not in ("f32", "f16", "bf16"):
        raise ModelLoadError(
            f"--cache-type-v {options.cache_type_v} needs flash attention: leave out --no-flash-attn, or use "
            "--cache-type-v f16"
        )
    params = context_params(loaded.lib, options, layout)
    clear_log()
    context = loaded.lib.llama_init_from_model(loaded.model, params)
    if not context:
        errors = [line.strip() for line in recent_log() if "error" in line.lower() or "failed" in line.lower()]
        reason = f" ({errors[-1]})" if errors else ""
        kv_types = {options.cache_type_k, options.cache_type_v} - {"f16"}
        hint = "; lower --n-ctx or --n-parallel"
        if kv_types:
            hint += " (the model's head size may not suit the KV cache types: try --cache-type-k/-v f16)"
        raise ModelLoadError(
            f"llama.cpp could not create a context of {layout.n_parallel} x {layout.n_ctx_per_seq} tokens{reason}{hint}"
        )
    return context


def meta_string(loaded: LoadedModel, key: str) -> str | None:
    """A GGUF metadata value as a string, or None when the key is absent."""
    buffer = ctypes.create_string_buffer(512)
    length = loaded.lib.llama_model_meta_val_str(loaded.model, key.encode(), buffer, len(buffer))
    if length < 0:
        return None
    return buffer.value.decode("utf-8", errors="replace")


def file_type_name(loaded: LoadedModel) -> str | None:
    """The model's file type as a quant name (``Q4_K_M``, ``IQ4_XS``, ``F16``), or None when unknown."""
    return quant_name(int(loaded.lib.llama_model_ftype(loaded.model)))


def model_meta(loaded: LoadedModel) -> dict[str, int]:
    """llama-server's ``meta`` of /v1/models, read from the loaded model (``size`` is the tensors' bytes)."""
    lib, model, vocab = loaded.lib, loaded.model, loaded.vocab
    return {
        "vocab_type": int(lib.llama_vocab_type(vocab)),
        "n_vocab": int(lib.llama_vocab_n_tokens(vocab)),
        "n_ctx_train": int(lib.llama_model_n_ctx_train(model)),
        "n_embd": int(lib.llama_model_n_embd(model)),
        "n_params": int(lib.llama_model_n_params(model)),
        "size": int(lib.llama_model_size(model)),
    }


class Tokenizer:
    """Text ↔ tokens with the model's vocabulary. Read-only (its caches fill idempotently): any thread may use it."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._lib = loaded.lib
        self._vocab = loaded.vocab
        self.n_vocab = int(self._lib.llama_vocab_n_tokens(self._vocab))
        self.bos = int(self._lib.llama_vocab_bos(self._vocab))
        # per-token answers, cached: each call into llama.cpp releases and retakes the GIL
        self._pieces: dict[int, bytes] = {}
        self._ends: dict[int, bool] = {}

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Tokens of ``text`` as a prompt: special tokens in it parsed when ``special``, BOS if the model wants one."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (self._lib.llama_token * capacity)()
        count = self._lib.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, special)
        if count < 0:
            capacity = -count
            buffer = (self._lib.llama_token * capacity)()
            count = self._lib.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, special)
        if count < 0:
            raise EngineError(f"llama.cpp could not tokenize a text of {len(data)} bytes")
        return list(buffer[:count])

    def count(self, text: str, *, special: bool = True) -> int:
        """How many tokens ``tokenize`` would give, without building them in Python (llama.cpp reports the count
        of a text that does not fit the buffer; ctypes releases the GIL meanwhile)."""
        data = text.encode("utf-8")
        buffer = (self._lib.llama_token * 1)()
        count = int(self._lib.llama_tokenize(self._vocab, data, len(data), buffer, 1, True, special))
        return count if count >= 0 else -count

    def piece(self, token: int) -> bytes:
        """The bytes of ``token`` as output text (control tokens such as <|im_end|> give nothing)."""
        cached = self._pieces.get(token)
        if cached is None:
            cached = self._pieces[token] = self._piece(token)
        return cached

    def _piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        length = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[: max(length, 0)]

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (end of sequence, <|im_end|>, <|endoftext|>, ...)."""
        cached = self._ends.get(token)
        if cached is None:
            cached = self._ends[token] = bool(self._lib.llama_vocab_is_eog(self._vocab, token))
        return cached
