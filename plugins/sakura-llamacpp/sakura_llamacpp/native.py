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


def load_model(lib: ModuleType, path: Path, *, n_gpu_layers: int, mmap: bool) -> LoadedModel:
    """Load the GGUF at ``path``; a failure becomes a one-line ModelLoadError saying what to do."""
    params = lib.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    params.load_mode = lib.LLAMA_LOAD_MODE_MMAP if mmap else lib.LLAMA_LOAD_MODE_NONE
    clear_log()
    model = lib.llama_model_load_from_file(str(path).encode(), params)
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
class ContextSettings:
    """What the decoding context is created with."""

    n_ctx_per_seq: int
    n_parallel: int
    n_batch: int
    threads: int
    flash_attn: bool | None


def create_context(loaded: LoadedModel, settings: ContextSettings) -> Any:
    """A context with one KV-cache region of ``n_ctx_per_seq`` cells per sequence."""
    lib = loaded.lib
    params = lib.llama_context_default_params()
    params.n_ctx = settings.n_ctx_per_seq * settings.n_parallel
    params.n_batch = settings.n_batch
    params.n_ubatch = min(settings.n_batch, 512)
    params.n_seq_max = settings.n_parallel
    params.n_threads = settings.threads
    params.n_threads_batch = settings.threads
    params.flash_attn_type = {
        None: lib.LLAMA_FLASH_ATTN_TYPE_AUTO,
        True: lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        False: lib.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }[settings.flash_attn]
    params.kv_unified = False  # a KV region per sequence: no sequence can take another's cells
    params.no_perf = True
    clear_log()
    context = lib.llama_init_from_model(loaded.model, params)
    if not context:
        errors = [line.strip() for line in recent_log() if "error" in line.lower() or "failed" in line.lower()]
        reason = f" ({errors[-1]})" if errors else ""
        raise ModelLoadError(
            f"llama.cpp could not create a context of {settings.n_parallel} x {settings.n_ctx_per_seq} tokens"
            f"{reason}; lower --n-ctx or --n-parallel"
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
    ftype = int(loaded.lib.llama_model_ftype(loaded.model)) & ~1024  # 1024: "guessed" flag
    try:
        import gguf

        name = gguf.LlamaFileType(ftype).name
    except (ImportError, ValueError):
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


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
