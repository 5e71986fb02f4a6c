"""The llamacpp engine: GGUF models in-process through llama-cpp-python, with continuous batching."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from sakura_core.engine import Engine, EngineError, EngineOptions, ModelLoadError
from sakura_core.identity import make_model_info
from sakura_core.types import Delta, EngineMetric, ModelInfo, SamplingParams, SlotCache
from sakura_llamacpp.cache_stats import PromptCacheStats
from sakura_llamacpp.options import DEFAULT_PARALLEL_CPU, DEFAULT_PARALLEL_GPU, LlamaCppOptions

logger = logging.getLogger(__name__)

#: Most seconds the decode thread waits, after each step, for the event loop to send that step's tokens.
HANDOFF_SECONDS = 0.005


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LlamaCppEngine(Engine):
    """Serves one GGUF model with llama.cpp: ``n_parallel`` sequences decoded together in one worker thread.

    After ``load``, ``gpu_layers`` holds the layers offloaded to a GPU (0: CPU only, -1: all) and
    ``gpu_offload_supported`` whether this llama-cpp-python build can offload at all.
    """

    name: ClassVar[str] = "llamacpp"
    description: ClassVar[str] = "GGUF models in-process through llama-cpp-python (CPU or GPU)"
    Options = LlamaCppOptions
    #: The decode loop ends on stop strings itself, across tokens (text_stream.py).
    handles_stop_strings: ClassVar[bool] = True
    options: LlamaCppOptions

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.gpu_layers: int | None = None
        self.gpu_offload_supported: bool | None = None
        self.model_path: Path | None = None
        self._lib: Any = None
        self._loaded: Any = None
        self._context: Any = None
        self._tokenizer: Any = None
        self._decoder: Any = None
        self._n_parallel = self.options.n_parallel or DEFAULT_PARALLEL_CPU

    # -- loading ---------------------------------------------------------------------------------------------

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        import asyncio  # imported here: `sakura --help` loads this module and needs no event loop

        if self._decoder is not None:
            raise ModelLoadError("this llamacpp engine has a model loaded already")
        return await asyncio.to_thread(self._load, model, model_version)

    def _load(self, model: str, model_version: str | None) -> ModelInfo:
        from sakura_llamacpp import native
        from sakura_llamacpp.batch import BatchDecoder
        from sakura_llamacpp.host_cache import MIB, HostPromptCache
        from sakura_llamacpp.model_source import resolve_model

        path = resolve_model(model)
        lib = native.import_llama_cpp()
        self._lib = lib
        self.model_path = path
        self.gpu_offload_supported = bool(lib.llama_supports_gpu_offload())
        self.gpu_layers = self._choose_gpu_layers(self.gpu_offload_supported)
        options = self.options
        self._n_parallel = options.n_parallel or (DEFAULT_PARALLEL_GPU if self.gpu_layers else DEFAULT_PARALLEL_CPU)
        n_batch = max(options.n_batch, self._n_parallel)
        threads = options.threads or available_cpus()
        logger.info("loading %s with llama.cpp (llama-cpp-python %s)", path, native.llama_cpp_version())
        self._loaded = native.load_model(lib, path, options, n_gpu_layers=self.gpu_layers)
        decoder: BatchDecoder | None = None
        try:
            layout = native.ContextLayout(
                n_ctx_per_seq=options.n_ctx, n_parallel=self._n_parallel, n_batch=n_batch, threads=threads
            )
            self._context = native.create_context(self._loaded, options, layout)
            if options.kv_unified:  # llama.cpp's per-sequence context is then the whole cache
                n_ctx_per_seq = int(lib.llama_n_ctx(self._context)) // self._n_parallel
            else:
                n_ctx_per_seq = int(lib.llama_n_ctx_seq(self._context))
            self._tokenizer = native.Tokenizer(self._loaded)
            meta = native.model_meta(self._loaded)
            if n_ctx_per_seq > meta["n_ctx_train"]:
                logger.warning(
                    "--n-ctx %d is beyond the %d tokens the model was trained on", n_ctx_per_seq, meta["n_ctx_train"]
                )
            self.model_info = make_model_info(
                path.name,
                context_length=n_ctx_per_seq,
                model_version=model_version,
                metadata_name=native.meta_string(self._loaded, "general.name"),
                metadata_quant=native.file_type_name(self._loaded),
                meta=meta,
                path=model,
            )
            decoder = BatchDecoder(
                lib,
                self._context,
                self._tokenizer,
                n_parallel=self._n_parallel,
                n_ctx_per_seq=n_ctx_per_seq,
                n_batch=n_batch,
                repeat_last_n=options.repeat_last_n,
                cache_prompt=options.cache_prompt,
                share_slots=options.share_prompt_cache,
                unified_kv=options.kv_unified,
                host_cache=None
                if options.cache_ram == 0 or not options.cache_prompt
                else HostPromptCache(None if options.cache_ram < 0 else options.cache_ram * MIB),
                slot_prompt_similarity=options.slot_prompt_similarity,
                # CPU decoding on every CPU: let the event loop send each step's tokens before the next step
                # takes all CPUs, instead of stalling llama.cpp's threads mid-step (worth 5-10% with 4 streams)
                handoff_seconds=HANDOFF_SECONDS if not self.gpu_layers and threads >= available_cpus() else 0.0,
                # on the CPU every token of a step costs its time: a later prompt's tokens in the step would delay
                # the earlier prompt's first token without bringing its own closer (a GPU reads them in parallel)
                pack_prompts_within=None if self.gpu_layers else min(options.n_ubatch, n_batch),
            )
            decoder.start()
        except BaseException:
            if decoder is not None:  # its batch and its host cache's buffer thread
                decoder.close()
            self._free_native()
            raise
        self._decoder = decoder
        logger.info(
            "llama.cpp ready: %d sequences x %d tokens of context, batch %d, %d threads, KV cache %s/%s, "
            "prompt cache %s (shared by the slots: %s, host memory: %s)",
            self._n_parallel,
            n_ctx_per_seq,
            n_batch,
            threads,
            options.cache_type_k,
            options.cache_type_v,
            "on" if options.cache_prompt else "off",
            "yes" if options.cache_prompt and options.share_prompt_cache else "no",
            "off"
            if not options.cache_prompt or options.cache_ram == 0
            else "no limit"
            if options.cache_ram < 0
            else f"{options.cache_ram} MiB",
        )
        return self.model_info

    def _choose_gpu_layers(self, supported: bool) -> int:
        """The ``n_gpu_layers`` to load with, logging where the model will run."""
        from sakura_llamacpp.native import CUDA_INSTALL

        asked = self.options.n_gpu_layers
        wants_gpu = self.options.use_gpu or (asked is not None and asked != 0)
        if not supported:
            message = "this llama-cpp-python build cannot offload to a GPU: running on the CPU"
            if wants_gpu:
                logger.warning("%s; for CUDA reinstall it: %s", message, CUDA_INSTALL)
            else:
                logger.info("%s", message)
            return 0
        layers = -1 if asked is None or (self.options.use_gpu and asked == 0) else asked
        if layers == 0:
            logger.info("GPU offload available but --n-gpu-layers 0: running on the CPU")
        else:
            logger.info("offloading %s layers to the GPU", "all" if layers < 0 else layers)
        return layers

    # -- serving ---------------------------------------------------------------------------------------------

    @property
    def parallelism(self) -> int:
        return self._n_parallel

    @property
    def active_generations(self) -> int:
        return 0 if self._decoder is None else int(self._decoder.active)

    def slot_caches(self) -> list[SlotCache] | None:
        if self._decoder is None or not self.options.cache_prompt:
            return None
        return list(self._decoder.slot_caches())

    def prompt_cache_stats(self) -> PromptCacheStats | None:
        """Where prompt tokens came from (decoded, kept, shared between slots, restored from host memory) and the
        host cache's size, hits and evictions; None before ``load`` or with ``--no-cache-prompt``."""
        if self._decoder is None or not self.options.cache_prompt:
            return None
        stats: PromptCacheStats = self._decoder.cache_stats()
        return stats

    def metrics(self) -> list[EngineMetric]:
        """The engine's figures for ``/metrics``: its decode steps and the time inside llama.cpp, and the prompt
        cache's (where prompt tokens came from, the host cache's use)."""
        decoder = self._decoder
        if decoder is None:
            return []
        busy = [
            EngineMetric(
                "decode_steps_total", "counter", "llama_decode calls that decoded a batch.", decoder.decode_steps
            ),
            EngineMetric(
                "decode_seconds_total",
                "counter",
                "Seconds spent inside llama_decode (over the wall time: how busy llama.cpp was kept).",
                decoder.decode_seconds,
            ),
        ]
        stats = self.prompt_cache_stats()
        if stats is None:
            return busy
        counters = [
            ("prompt_tokens_decoded_total", "Prompt tokens put through llama_decode.", stats.prompt_tokens_decoded),
            ("prompt_tokens_kept_total", "Prompt tokens already in the slot's own cells.", stats.prompt_tokens_kept),
            (
                "prompt_tokens_shared_total",
                "Prompt tokens taken from another slot's cells without decoding them.",
                stats.prompt_tokens_shared,
            ),
            (
                "prompt_tokens_restored_total",
                "Prompt tokens restored from the host-memory prompt cache.",
                stats.prompt_tokens_restored,
            ),
            ("host_cache_saves_total", "Prompts saved to the host-memory cache.", stats.host_cache_saves),
            ("host_cache_hits_total", "Prompts restored from the host-memory cache.", stats.host_cache_hits),
            ("host_cache_evictions_total", "Prompts evicted from the host-memory cache.", stats.host_cache_evictions),
        ]
        gauges = [
            ("host_cache_bytes", "Bytes the host-memory prompt cache holds.", stats.host_cache_bytes),
            ("host_cache_entries", "Prompts the host-memory prompt cache holds.", stats.host_cache_entries),
        ]
        if stats.host_cache_limit_bytes is not None:
            gauges.append(("host_cache_limit_bytes", "--cache-ram, in bytes.", stats.host_cache_limit_bytes))
        return (
            busy
            + [EngineMetric(name, "counter", text, value) for name, text, value in counters]
            + [EngineMetric(name, "gauge", text, value) for name, text, value in gauges]
        )

    def _running(self) -> tuple[Any, Any]:
        if self._decoder is None or self._tokenizer is None:
            raise EngineError("the llama.cpp engine has no model loaded")
        return self._decoder, self._tokenizer

    def tokenize(self, text: str) -> list[int]:
        """The model's tokens for ``text`` as a prompt (special tokens parsed)."""
        return list(self._running()[1].tokenize(text))

    def count_tokens(self, text: str) -> int:
        """The prompt's length in tokens, counted by llama.cpp without building the token list (a huge prompt is
        counted in the core's counting thread and refused by its length without holding the GIL)."""
        return int(self._running()[1].count(text))

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        import asyncio

        from sakura_llamacpp.batch import SequenceRequest

        decoder, tokenizer = self._running()
        tokens = await asyncio.to_thread(tokenizer.tokenize, prompt)  # never on the event loop
        if not tokens:
            if tokenizer.bos < 0:
                raise EngineError("the prompt is empty")
            tokens = [tokenizer.bos]
        if len(tokens) >= decoder.n_ctx_per_seq:
            raise EngineError(
                f"the prompt is {len(tokens)} tokens, more than the {decoder.n_ctx_per_seq}-token context per "
                "sequence allows; shorten it or raise --n-ctx"
            )
        request = SequenceRequest(tokens, params, asyncio.get_running_loop())
        decoder.submit(request)
        done = False
        try:
            while not done:
                item = await request.queue.get()
                if isinstance(item, BaseException):
                    done = True
                    raise item
                done = item.finish_reason is not None
                yield item
        finally:
            if not done and decoder.cancel(request):
                await request.released.wait()  # the worker frees the sequence's KV cells at its next step

    # -- shutdown --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        import asyncio

        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.close()
        self._free_native()

    def _free_native(self) -> None:
        if self._context is not None:
            self._lib.llama_free(self._context)
            self._context = None
        if self._loaded is not None:
            self._loaded.free()
            self._loaded = None
        self._tokenizer = None
