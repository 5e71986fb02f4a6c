"""An engine written against the first edition of the engine contract keeps working unchanged.

``OldContractEngine`` is the example engine as docs/plugins.md showed it before the core took over the
bookkeeping: it counts its own running generations, matches stop strings itself, counts tokens and sets every
finish reason, with a plain ``count_tokens`` and a thread pool for its blocking backend. It passes the conformance
kit and serves through the server as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import Field

from sakura_core import Delta, Engine, EngineError, EngineOptions, ModelInfo, ModelLoadError, SamplingParams
from sakura_core.identity import make_model_info
from sakura_core.plugins import PluginRegistry
from sakura_core.server import create_app
from sakura_core.stop_strings import StopStringFilter
from sakura_core.testing.conformance import EngineConformance

_MARKUP = re.compile(r"<\|im_start\|>\w*\n?|<\|im_end\|>|<\|endoftext\|>|<reserved_10[67]>")


class OldBackend:
    """The example's blocking backend as it was: it stops early when the engine sets ``cancelled``."""

    def __init__(self, token_delay: float = 0.0) -> None:
        self.token_delay = token_delay

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def decode(
        self, prompt: str, max_tokens: int, seed: int | None, greedy: bool, cancelled: threading.Event
    ) -> Iterator[str]:
        lines = [line for line in _MARKUP.sub("\n", prompt).splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        tokens = self.tokenize(last.rpartition("：")[2] or last)
        if not greedy:
            random.Random(seed).shuffle(tokens)
        for token in tokens[:max_tokens]:
            if cancelled.is_set():
                return
            time.sleep(self.token_delay)
            yield token


_END = object()


class OldOptions(EngineOptions):
    """Options of the echo engine; each field becomes a ``sakura run`` option."""

    parallel: int = Field(2, ge=1, description="Sequences generated at once.", json_schema_extra={"aliases": ["-np"]})
    token_delay: float = Field(0.0, ge=0.0, description="Seconds the backend spends on each token.")
    n_ctx: int = Field(2048, ge=16, description="Context length per sequence, in tokens.")


class OldContractEngine(Engine):
    """Echoes the source text of the last user message, one character per token, decoding in worker threads."""

    name: ClassVar[str] = "oldecho"
    description: ClassVar[str] = "Echoes the source text back (an example plugin)"
    Options = OldOptions
    options: OldOptions

    def __init__(self, options: OldOptions | None = None) -> None:
        super().__init__(options)
        self._model: OldBackend | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._active = 0

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        # Import the backend library here, never at module level: `sakura --help` must not pay for it.
        if not model.strip():
            raise ModelLoadError("--model is empty: pass a model name such as sakura-echo-v1.0")
        self._model = OldBackend(token_delay=self.options.token_delay)
        self._executor = ThreadPoolExecutor(max_workers=self.options.parallel, thread_name_prefix="sakura-echo")
        self.model_info = make_model_info(model, context_length=self.options.n_ctx, model_version=model_version)
        return self.model_info

    @property
    def parallelism(self) -> int:
        return self.options.parallel

    @property
    def active_generations(self) -> int:
        return self._active

    def count_tokens(self, text: str) -> int:
        return len(self._loaded().tokenize(text))

    def _loaded(self) -> OldBackend:
        if self._model is None:
            raise EngineError("the echo engine has no model loaded")
        return self._model

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        model = self._loaded()
        prompt_tokens = self.count_tokens(prompt)
        if prompt_tokens >= self.options.n_ctx:
            raise EngineError(f"the prompt is {prompt_tokens} tokens; the context holds {self.options.n_ctx}")
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def decode() -> None:
            # Runs in a worker thread: the blocking library call must never run on the event loop.
            try:
                for token in model.decode(prompt, params.max_tokens, params.seed, params.greedy, cancelled):
                    loop.call_soon_threadsafe(tokens.put_nowait, token)
                loop.call_soon_threadsafe(tokens.put_nowait, _END)
            except Exception as exc:
                loop.call_soon_threadsafe(tokens.put_nowait, exc)

        self._active += 1
        worker = loop.run_in_executor(self._executor, decode)
        stop_filter = StopStringFilter(params.stop)
        produced = 0
        try:
            while (token := await tokens.get()) is not _END:
                if isinstance(token, Exception):
                    raise EngineError(f"the echo backend failed: {token}") from token
                produced += 1
                text = stop_filter.feed(str(token))
                if stop_filter.stopped:
                    yield Delta(text, prompt_tokens, produced, "stop")
                    return
                if produced == params.max_tokens:
                    yield Delta(text + stop_filter.flush(), prompt_tokens, produced, "length")
                    return
                yield Delta(text, prompt_tokens, produced)
            yield Delta(stop_filter.flush(), prompt_tokens, produced, "stop")  # end of sequence: not counted
        finally:
            # Reached on completion, on aclose() and on cancellation alike: stop the worker, then count it out.
            cancelled.set()
            try:
                with contextlib.suppress(Exception):
                    await asyncio.shield(worker)
            finally:
                self._active -= 1

    async def close(self) -> None:
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
            self._executor = None
        self._model = None


class TestOldContractEngineConformance(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    async def engine(cls) -> AsyncIterator[OldContractEngine]:
        engine = OldContractEngine(OldOptions(parallel=2, token_delay=0.001))
        await engine.load("sakura-echo-v1.0")
        yield engine
        await engine.close()


async def test_the_old_engine_serves_a_chat_completion_with_a_stop_string() -> None:
    engine = OldContractEngine(OldOptions(parallel=2))
    info = await engine.load("sakura-echo-v1.0")
    server = TestServer(create_app(engine, PluginRegistry.create(entry_points=False), info), host="127.0.0.1")
    await server.start_server()
    try:
        body = {
            "messages": [{"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"}],
            "stop": ["ンゴ"],
            "temperature": 0,
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{server.port}/v1/chat/completions", json=body) as response:
                answer = await response.json()
        assert response.status == 200, answer
        assert answer["choices"][0]["message"]["content"] == "やる気マ"
        assert answer["choices"][0]["finish_reason"] == "stop"
        assert answer["usage"]["completion_tokens"] == 6
        assert engine.active_generations == 0
    finally:
        await server.close()
        await engine.close()
