"""A loaded model's generation path, owned by one object: every caller generates through it.

``LoadedModel`` is built once per loaded engine. It chooses the model's prompt format, renders chat messages with
it, counts prompts, fits a request to the model's context (the default ``max_tokens`` and its clamp live here and
nowhere else), merges the client's stop strings with the format's, runs the plugin hooks around the engine's
stream (through the one ``EngineRunner`` it holds) and closes the engine. The server, ``sakura translate``'s
in-process backend, the Ray replica and the start-up self-check are thin callers of it.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Hashable, Mapping, Sequence
from typing import Any, Literal

from sakura_core.engine import Engine
from sakura_core.engine_runner import EngineRunner
from sakura_core.limits import max_prompt_chars
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import Message, PromptFormat, validate_messages
from sakura_core.think_filter import LeadingThinkFilter
from sakura_core.types import (
    DEFAULT_MAX_TOKENS,
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    SamplingParams,
)

logger = logging.getLogger(__name__)

#: ``max_tokens`` that asks for as many tokens as the context leaves (llama-server's ``n_predict: -1``).
UNTIL_CONTEXT_FULL = -1
#: A prompt longer than ``max(context × PREFIX_CHARS_PER_TOKEN, PREFIX_MIN_CHARS)`` characters is first counted
#: only that far: text averages well under 4 characters a token, so that prefix alone usually shows the prompt
#: cannot fit, and the rest (megabytes, seconds of counting) is never counted.
PREFIX_CHARS_PER_TOKEN = 4
PREFIX_MIN_CHARS = 64 * 1024
#: Tokens a prefix may count past the context before the whole prompt is refused on its count: a token may
#: straddle the cut, so the prefix's count may exceed the same text's count inside the whole prompt a little.
PREFIX_MARGIN_TOKENS = 16


class PromptTooLongError(ValueError):
    """The prompt leaves no room in the model's context for a single token. Servers answer 400."""


def combined_stop(requested: Sequence[str], format_stop: Sequence[str]) -> list[str]:
    """The client's stop strings followed by the prompt format's, without empty strings or repeats."""
    return list(dict.fromkeys(s for s in (*requested, *format_stop) if s))


class LoadedModel:
    """One loaded engine and everything a generation on it goes through."""

    def __init__(self, engine: Engine, registry: PluginRegistry, info: ModelInfo) -> None:
        self.engine = engine
        self.registry = registry
        #: The model's prompt format: the one the engine named, else the one that matches its identity.
        self.prompt_format: PromptFormat = registry.prompt_format_for(info)
        #: The model's identity, with the prompt format it is served with.
        self.info = info.model_copy(update={"prompt_format": self.prompt_format.name})
        #: The core's rules around the engine (finish rules, counts off the loop, closing); the only one built.
        self.runner = EngineRunner(engine)

    @classmethod
    async def load(
        cls, engine: Engine, registry: PluginRegistry, model: str, model_version: str | None = None
    ) -> LoadedModel:
        """Load ``model`` with ``engine``. An unknown ``model_version`` raises ``UnknownModelVersionError`` before
        anything loads; a ``ModelLoadError`` from the engine propagates (its message is one line)."""
        registry.check_model_version(model_version)
        return cls(engine, registry, await engine.load(model, model_version))

    @property
    def context_length(self) -> int:
        """Tokens of context one sequence has."""
        return self.info.context_length

    def with_id(self, model_id: str) -> None:
        """Serve the model under another id (``--alias``)."""
        self.info = self.info.model_copy(update={"id": model_id})

    def render(self, messages: Sequence[Message]) -> str:
        """The raw prompt for chat ``messages``; ``MessagesError`` for an empty list or an unknown role."""
        validate_messages(messages)
        return self.prompt_format.render(messages)

    async def prepare(
        self,
        prompt: str,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        *,
        max_tokens: int | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        request_id: str | None = None,
        client: Hashable = None,
    ) -> GenerationRequest:
        """A generation request for ``prompt``, fitted to the model's context.

        ``max_tokens`` None means ``DEFAULT_MAX_TOKENS``; ``UNTIL_CONTEXT_FULL`` as many as the context leaves;
        any value is lowered to what the context leaves. The format's stop strings are added to ``sampling``'s.
        A prompt too long for the context raises ``PromptTooLongError``: one far too long by its length alone,
        before it is counted. A ``pydantic.ValidationError`` says which sampling value is out of range; what the
        engine's count raises propagates.
        """
        values = sampling.model_dump() if isinstance(sampling, SamplingParams) else dict(sampling or {})
        self._check_length(prompt)
        prompt_tokens = await self.count_prompt(prompt, client)
        wanted = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        stop = combined_stop(values.get("stop") or (), self.prompt_format.stop)
        params = SamplingParams(**{**values, "max_tokens": self._fit(wanted, prompt_tokens), "stop": stop})
        request_id = request_id or uuid.uuid4().hex
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("request %s: %d prompt tokens, %s\nprompt: %r", request_id, prompt_tokens, params, prompt)
        return GenerationRequest(
            prompt=prompt,
            params=params,
            messages=[dict(m) for m in messages] if messages is not None else None,
            request_id=request_id,
            prompt_tokens=prompt_tokens,
        )

    async def count_prompt(self, prompt: str, client: Hashable = None) -> int:
        """The prompt's tokens; ``PromptTooLongError`` as soon as a prefix of it shows that it cannot fit.
        ``client`` (its address, when known) takes turns with other clients for the counting thread."""
        prefix_chars = max(self.context_length * PREFIX_CHARS_PER_TOKEN, PREFIX_MIN_CHARS)
        if len(prompt) > prefix_chars:
            counted = await self.runner.count_tokens(prompt[:prefix_chars], owner=client)
            if counted > self.context_length + PREFIX_MARGIN_TOKENS:
                raise PromptTooLongError(
                    f"the prompt is more than {counted - PREFIX_MARGIN_TOKENS} tokens (its first {prefix_chars}"
                    f" characters alone; it has {len(prompt)}) but the model's context is {self.context_length}"
                    " tokens per sequence; send a shorter text"
                )
        return await self.runner.count_tokens(prompt, owner=client)

    def _check_length(self, prompt: str) -> None:
        limit = max_prompt_chars(self.context_length)
        if len(prompt) > limit:
            raise PromptTooLongError(
                f"the prompt is {len(prompt)} characters; a context of {self.context_length} tokens per sequence"
                f" cannot hold more than {limit}: send a shorter text"
            )

    def _fit(self, max_tokens: int, prompt_tokens: int) -> int:
        """``max_tokens`` lowered to what the context leaves after the prompt (all of it for
        ``UNTIL_CONTEXT_FULL``); PromptTooLongError when the prompt leaves nothing. The one clamp."""
        if prompt_tokens >= self.context_length:
            raise PromptTooLongError(
                f"the prompt is {prompt_tokens} tokens but the model's context is {self.context_length} tokens per"
                " sequence; send a shorter text"
            )
        room = self.context_length - prompt_tokens
        return room if max_tokens == UNTIL_CONTEXT_FULL else min(max_tokens, room)

    async def _apply_hooks(self, request: GenerationRequest) -> None:
        """``before_generate`` hooks; a prompt they rewrote is counted and fitted to the context again."""
        counted = request.prompt
        self.registry.plugin_manager.hook.before_generate(request=request, model=self.info)
        if request.prompt_tokens is not None and request.prompt == counted:
            return
        self._check_length(request.prompt)
        request.prompt_tokens = await self.count_prompt(request.prompt)
        fitted = self._fit(request.params.max_tokens, request.prompt_tokens)
        if fitted != request.params.max_tokens:
            request.params = request.params.model_copy(update={"max_tokens": fitted})

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream a prepared request: ``before_generate`` hooks, the engine's deltas, ``after_generate`` hooks.

        Stopping early (``aclose()`` or cancelling the consuming task) closes the engine's stream, which frees
        the engine's sequence, and observers see ``finish_reason == "cancelled"``. A model whose prompt format
        has ``strip_think`` never yields the ``<think>…</think>`` block a reply may open with.
        """
        hooks = self.registry.plugin_manager.hook
        think = LeadingThinkFilter() if self.prompt_format.strip_think else None
        await self._apply_hooks(request)
        started = time.perf_counter()
        first_token_at: float | None = None
        pieces: list[str] = []
        last = Delta()
        finish: FinishReason | Literal["cancelled", "error"] = "cancelled"
        stream = self.runner.stream(request.prompt, request.params, prompt_tokens=request.prompt_tokens or 0)
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
                hooks.after_generate(request=request, result=result, model=self.info)

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        """Run a prepared request to its end and return the joined result."""
        return await join_deltas(self.stream(request))

    async def close(self) -> None:
        """Stop the counting thread, wait for streams still closing, and close the engine."""
        self.runner.close()
        await self.runner.close_engine()


async def join_deltas(deltas: AsyncGenerator[Delta, None]) -> GenerationResult:
    """Consume a generation's deltas to the end (closing the stream however it ends) and join them: the text, the
    last delta's counts and finish reason, the time taken and the time to the first generated token."""
    started = time.perf_counter()
    pieces: list[str] = []
    last = Delta()
    first: float | None = None
    try:
        async for delta in deltas:
            if first is None and delta.completion_tokens > 0:
                first = time.perf_counter() - started
            pieces.append(delta.text)
            last = delta
    finally:
        await deltas.aclose()
    return GenerationResult(
        text="".join(pieces),
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        finish_reason=last.finish_reason or "stop",
        seconds=time.perf_counter() - started,
        time_to_first_token=first,
    )
