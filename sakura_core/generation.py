"""The generation path every caller shares: plugin hooks around the engine's streaming generate."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Literal

from sakura_core.engine import Engine
from sakura_core.engine_runner import EngineRunner
from sakura_core.plugins import PluginRegistry
from sakura_core.think_filter import LeadingThinkFilter
from sakura_core.types import Delta, FinishReason, GenerationRequest, GenerationResult, ModelInfo


async def generate(
    engine: Engine | EngineRunner, registry: PluginRegistry, request: GenerationRequest, model: ModelInfo
) -> AsyncIterator[Delta]:
    """Stream a generation: ``before_generate`` hooks, the engine's deltas, then ``after_generate`` hooks.

    ``engine`` is an engine or the ``EngineRunner`` that counts its generations (the server passes its own).
    Stopping early (``aclose()`` or cancelling the consuming task) closes the engine's stream, which frees
    the engine's sequence, and observers see ``finish_reason == "cancelled"``. A model whose prompt format has
    ``strip_think`` never yields the ``<think>…</think>`` block a reply may open with.
    """
    runner = engine if isinstance(engine, EngineRunner) else EngineRunner(engine)
    hooks = registry.plugin_manager.hook
    counted_prompt = request.prompt
    prompt_format = registry.prompt_formats().get(model.prompt_format)
    think = LeadingThinkFilter() if prompt_format is not None and prompt_format.strip_think else None
    hooks.before_generate(request=request, model=model)
    if request.prompt_tokens is None or request.prompt != counted_prompt:
        request.prompt_tokens = await runner.count_tokens(request.prompt)
    started = time.perf_counter()
    first_token_at: float | None = None
    pieces: list[str] = []
    last = Delta()
    finish: FinishReason | Literal["cancelled", "error"] = "cancelled"
    stream = runner.stream(request.prompt, request.params, prompt_tokens=request.prompt_tokens)
    try:
        async for delta in stream:
            if think is not None:
                delta = think.filter(delta)
            if first_token_at is None and delta.completion_tokens > 0:
                first_token_at = time.perf_counter()
            pieces.append(delta.text)
            last = delta
            if delta.finish_reason is not None:
                finish = delta.finish_reason
            yield delta
    except Exception:
        finish = "error"
        raise
    finally:
        try:
            with contextlib.suppress(Exception):
                await stream.aclose()
        finally:  # observers hear of the generation even when a cancellation reaches the caller while it closes
            result = GenerationResult(
                text="".join(pieces),
                prompt_tokens=last.prompt_tokens,
                completion_tokens=last.completion_tokens,
                finish_reason=finish,
                seconds=time.perf_counter() - started,
                time_to_first_token=None if first_token_at is None else first_token_at - started,
            )
            hooks.after_generate(request=request, result=result, model=model)


async def complete(
    engine: Engine | EngineRunner, registry: PluginRegistry, request: GenerationRequest, model: ModelInfo
) -> GenerationResult:
    """Run a generation to its end and return the joined result."""
    started = time.perf_counter()
    pieces: list[str] = []
    last = Delta()
    first: float | None = None
    async for delta in generate(engine, registry, request, model):
        if first is None and delta.completion_tokens > 0:
            first = time.perf_counter() - started
        pieces.append(delta.text)
        last = delta
    return GenerationResult(
        text="".join(pieces),
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        finish_reason=last.finish_reason or "stop",
        seconds=time.perf_counter() - started,
        time_to_first_token=first,
    )
