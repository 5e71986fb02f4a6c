"""The vllm engine: Transformers, GPTQ and AWQ Sakura models on vLLM's V1 ``AsyncLLM``.

Every generation goes straight to vLLM, which batches all running requests continuously; its outputs stream
back one step (one token) at a time as deltas. Closing or cancelling a generation aborts its request in vLLM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from sakura_core.engine import Engine, EngineError, EngineOptions, ModelLoadError
from sakura_core.types import Delta, FinishReason, ModelInfo, SamplingParams
from sakura_vllm import backend
from sakura_vllm.backend import one_line
from sakura_vllm.options import VllmOptions
from sakura_vllm.scheduler_stats import SchedulerSnapshot

logger = logging.getLogger(__name__)


class VllmEngine(Engine):
    """Serves one Transformers-format model (full, GPTQ, AWQ, FP8, ...) with vLLM, on one GPU, several, or a Ray
    cluster (``--tensor-parallel-size``, ``--pipeline-parallel-size``, ``--distributed-executor-backend ray``).

    After ``load``, ``llm`` is vLLM's ``AsyncLLM`` and ``scheduler`` holds its scheduler's latest figures
    (requests running in vLLM's engine process, KV-cache use).
    """

    name: ClassVar[str] = "vllm"
    description: ClassVar[str] = "Transformers/GPTQ/AWQ models on vLLM (GPUs, tensor/pipeline parallel, Ray; CPU build)"
    Options = VllmOptions
    #: vLLM ends on stop strings itself (and never emits them).
    handles_stop_strings: ClassVar[bool] = True
    options: VllmOptions

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.llm: Any = None
        self.scheduler = SchedulerSnapshot()
        self._max_num_seqs = self.options.max_num_seqs or 1
        self._tokenizer: Any = None
        self._special_token_ids: dict[str, int] = {}
        self._render: Any = None

    # -- loading ---------------------------------------------------------------------------------------------

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        if self.llm is not None:
            raise ModelLoadError("this vllm engine has a model loaded already")
        require_model_exists(model)
        backend.import_vllm()
        platform = backend.current_platform()
        backend.require_usable_platform(platform, backend.vllm_distribution())
        backend.require_ray(self.options.distributed_executor_backend)
        vllm_config = await asyncio.to_thread(self._engine_config, model)
        backend.check_cpu_model_shape(platform, vllm_config)
        model_config = vllm_config.model_config
        logger.info(
            "starting %s on %s: %s (tensor parallel %d, pipeline parallel %d, context %d, %d sequences)",
            " ".join(backend.vllm_distribution() or ("vLLM",)),
            platform.device_name,
            model,
            vllm_config.parallel_config.tensor_parallel_size,
            vllm_config.parallel_config.pipeline_parallel_size,
            model_config.max_model_len,
            vllm_config.scheduler_config.max_num_seqs,
        )
        self.llm = await asyncio.to_thread(self._start, vllm_config)
        self._max_num_seqs = vllm_config.scheduler_config.max_num_seqs
        self._tokenizer = self.llm.get_tokenizer()
        self._special_token_ids = special_token_ids(self._tokenizer)
        self._render = prompt_renderer(self.llm)

        from sakura_vllm.identity import model_info_from_config

        self.model_info = model_info_from_config(
            model,
            model_config.hf_config,
            context_length=model_config.max_model_len,
            model_version=model_version,
            quantization=self.options.effective_quantization,
        )
        return self.model_info

    def _engine_config(self, model: str) -> Any:
        """vLLM's full configuration for ``model`` (reads the model's config; may download it)."""
        from vllm import AsyncEngineArgs

        try:
            kwargs = self.options.engine_args(model)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
        unknown_engine_args(AsyncEngineArgs, kwargs)
        try:
            engine_args = AsyncEngineArgs(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"vLLM rejects these engine arguments: {one_line(exc)}") from None
        from vllm.usage.usage_lib import UsageContext

        try:  # as an API server: vLLM's defaults for `vllm serve` (scheduler limits) apply
            return engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
        except Exception as exc:
            raise ModelLoadError(f"vLLM cannot use {model!r} with these options: {one_line(exc)}") from exc

    def _start(self, vllm_config: Any) -> Any:
        """Start vLLM's engine processes and return the ``AsyncLLM``."""
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        from sakura_vllm.scheduler_stats import stat_logger_factory

        try:
            return AsyncLLM.from_vllm_config(
                vllm_config,
                usage_context=UsageContext.OPENAI_API_SERVER,
                disable_log_stats=True,
                stat_loggers=[stat_logger_factory(self.scheduler)],
            )
        except Exception as exc:
            raise ModelLoadError(
                f"vLLM could not start its engine: {one_line(exc)} (vLLM's log above says why)"
            ) from exc

    # -- serving ---------------------------------------------------------------------------------------------

    @property
    def parallelism(self) -> int:
        """vLLM's ``max_num_seqs``: the requests its scheduler runs together."""
        return self._max_num_seqs

    @property
    def active_generations(self) -> int:
        """Requests vLLM's front end is still tracking (0 when every generation has ended or been aborted)."""
        return 0 if self.llm is None else int(self.llm.get_num_unfinished_requests())

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            raise EngineError("no model is loaded")
        return len(self._tokenizer.encode(text, add_special_tokens=True))

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        if self.llm is None:
            raise EngineError("no model is loaded")
        from sakura_vllm.sampling import to_vllm

        try:
            vllm_params = to_vllm(params, self._special_token_ids)
            engine_input = await self._render(prompt)
        except Exception as exc:
            raise EngineError(f"vLLM rejected the request: {one_line(exc)}") from exc
        prompt_tokens = len(engine_input.get("prompt_token_ids") or ()) if isinstance(engine_input, dict) else 0
        stream = self.llm.generate(engine_input, vllm_params, f"sakura-{uuid.uuid4().hex}")
        completion_tokens = 0
        try:
            # vLLM's stream ends by itself after its final output; leaving it earlier aborts the request
            async for output in stream:
                piece = output.outputs[0]
                completion_tokens += len(piece.token_ids)
                cached = output.num_cached_tokens  # the prompt's tokens vLLM's prefix cache held
                if output.finished:
                    finish, completion_tokens = final_count(piece.finish_reason, piece.stop_reason, completion_tokens)
                    yield Delta(piece.text, prompt_tokens, completion_tokens, finish, cached)
                    return
                if piece.text:
                    yield Delta(piece.text, prompt_tokens, completion_tokens, None, cached)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM failed: {one_line(exc)}") from exc
        finally:
            await stream.aclose()  # a no-op after the final output; otherwise vLLM aborts the request
        raise EngineError("vLLM ended the request without a finish reason")

    async def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)


def final_count(
    finish_reason: str | None, stop_reason: int | str | None, completion_tokens: int
) -> tuple[FinishReason, int]:
    """The contract's finish reason and token count for vLLM's final output.

    vLLM counts the end-of-sequence token (or a stop token id) it stopped on; the contract does not, so it is
    taken off. A stop string's tokens stay counted. ``abort`` and ``error`` are failures, not finishes.
    """
    if finish_reason == "length":
        return "length", completion_tokens
    if finish_reason == "stop":
        ended_on_token = stop_reason is None or isinstance(stop_reason, int)
        return "stop", completion_tokens - 1 if ended_on_token and completion_tokens > 0 else completion_tokens
    raise EngineError(f"vLLM ended the request with finish reason {finish_reason!r}")


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's special (added) tokens by text, for stopping on them by id."""
    found: dict[str, int] = {}
    for token in getattr(tokenizer, "all_special_tokens", None) or []:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id >= 0:
            found[str(token)] = token_id
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for token_id, added in decoder.items():
        if getattr(added, "special", False):
            found.setdefault(str(added.content), int(token_id))
    return found


def prompt_renderer(llm: Any) -> Any:
    """An async function turning a raw prompt into vLLM's engine input, tokenised by vLLM's own renderer.

    Falls back to vLLM's plain text prompt where its renderer API is not there (older vLLM).
    """

    async def render_text(prompt: str) -> Any:
        return {"prompt": prompt}

    renderer = getattr(llm, "renderer", None)
    try:
        from vllm.renderers.inputs.preprocess import parse_model_prompt
    except ImportError:
        return render_text
    if renderer is None or not hasattr(renderer, "render_cmpl_async"):
        return render_text
    model_config = llm.model_config

    async def render(prompt: str) -> Any:
        (engine_input,) = await renderer.render_cmpl_async([parse_model_prompt(model_config, prompt)])
        return engine_input

    return render


def require_model_exists(model: str) -> None:
    """Raise ModelLoadError for a local path that does not exist (a Hugging Face id, ``org/name``, is let through)."""
    looks_local = model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
    if looks_local and not Path(model).expanduser().exists():
        raise ModelLoadError(
            f"{model} does not exist: pass a model directory (with config.json) or a Hugging Face repository id"
        )


def unknown_engine_args(engine_args_class: Any, kwargs: dict[str, Any]) -> None:
    """Raise ModelLoadError naming engine arguments this vLLM does not have, with the closest real names."""
    known = {field.name for field in dataclasses.fields(engine_args_class)}
    for key in sorted(set(kwargs) - known):
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see: vllm serve --help)"
        raise ModelLoadError(f"vLLM has no engine argument {key!r}{hint}")
