"""The rules every engine shares, applied once around any engine: what an engine author no longer writes.

``EngineRunner`` wraps one loaded engine. It counts the generations running on it, runs the engine's token count
off the event loop (or awaits it when the engine's count is a coroutine), and turns the engine's stream into the
contract's stream of ``Delta`` objects: one token per ``str`` piece, token counts filled in, the stream ended at
``max_tokens`` (finish ``"length"``) and on stop strings (never emitted, finish ``"stop"``), exactly one final
delta, and the engine's stream closed however the caller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable

from sakura_core.engine import Engine, EngineError
from sakura_core.fair_lane import FairLane
from sakura_core.stop_strings import StopStringFilter
from sakura_core.types import Delta, FinishReason, SamplingParams

#: Texts longer than this many characters are counted by the runner's one counting thread, one at a time, so a flood
#: of huge prompts cannot take every CPU from decoding, nor make short prompts wait behind them.
LONG_TEXT_CHARS = 4096
#: Texts longer than this (longer than a real prompt for any usual context) are counted in a thread of their own,
#: one at a time: a client that sends huge prompts makes only huge prompts wait.
HUGE_TEXT_CHARS = 64 * 1024
#: How long ``wait_closed`` waits for generations' streams to finish closing.
CLOSE_WAIT_SECONDS = 2.0


class EngineRunner:
    """Runs generations on one engine, with the finish rules and bookkeeping every engine shares."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: Long texts are counted here, one at a time, the clients taking turns; huge ones in a lane of their own.
        self._long_counts = FairLane("sakura-count-tokens")
        self._huge_counts = FairLane("sakura-count-tokens-huge")
        #: Generations running now (from the first request to the engine until its stream is closed).
        self.active = 0
        #: Most generations that ran at once.
        self.peak_active = 0
        #: Generations started so far.
        self.started = 0
        #: Engine streams being closed (held so that a close outlives a cancelled caller).
        self._closing: set[asyncio.Future[None]] = set()
        #: Why the engine cannot serve, as its last health check said (None: it can, or it reports no health).
        self.health_problem: str | None = None
        #: The engine's health check in progress (one at a time: a check that outlives its time limit is waited
        #: for again by the next poll, never started twice).
        self._health_check: asyncio.Future[str | None] | None = None
        #: Why the watchdog thinks the engine is wedged (None: every generation is making progress).
        self.stall_problem: str | None = None
        #: When each running generation last made progress (its request, then each piece), by generation number.
        self._progress: dict[int, float] = {}
        self._numbers = itertools.count()

    @property
    def problem(self) -> str | None:
        """Why the engine cannot serve now: its health check's word, else the watchdog's (None: it can)."""
        return self.health_problem or self.stall_problem

    def stalled_for(self) -> float:
        """Seconds the longest-silent running generation has gone without progress (0 when none runs)."""
        if not self._progress:
            return 0.0
        return time.monotonic() - min(self._progress.values())

    def check_progress(self, stall_seconds: float) -> str | None:
        """The watchdog: a generation with no progress for ``stall_seconds`` makes the engine count as down until
        it ends or moves again. Returns (and remembers) the reason, or None."""
        silent = self.stalled_for()
        if silent >= stall_seconds:
            self.stall_problem = (
                f"a generation has made no progress for {silent:.0f} s (the {self.engine.name} engine may be wedged)"
            )
        else:
            self.stall_problem = None
        return self.stall_problem

    async def count_tokens(self, text: str, *, owner: Hashable = None) -> int:
        """The engine's token count of ``text``, never computed on the event loop by a blocking count.

        Long texts wait their turn in a counting lane where each ``owner`` (the client, when the caller knows it)
        takes turns with the others: one client's many long prompts never hold up everyone else's.
        """
        count_tokens = self.engine.count_tokens
        if inspect.iscoroutinefunction(count_tokens):
            result = await count_tokens(text)
        else:
            if len(text) > HUGE_TEXT_CHARS:
                result = await self._huge_counts.run(owner, count_tokens, text)
            elif len(text) > LONG_TEXT_CHARS:
                result = await self._long_counts.run(owner, count_tokens, text)
            else:
                result = await asyncio.to_thread(count_tokens, text)
            if inspect.isawaitable(result):  # a plain method that returned a coroutine
                result = await result
        if not isinstance(result, int) or isinstance(result, bool) or result < 0:
            raise EngineError(f"the {self.engine.name} engine counted {result!r} tokens; expected an int >= 0")
        return result

    def close(self) -> None:
        """Stop the counting threads (a count in progress finishes) and a health check still running."""
        self._long_counts.close()
        self._huge_counts.close()
        if self._health_check is not None:
            self._health_check.cancel()

    async def wait_closed(self) -> None:
        """Wait (up to ``CLOSE_WAIT_SECONDS``) for engine streams still closing."""
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=CLOSE_WAIT_SECONDS)

    async def close_engine(self) -> None:
        """Close the engine, once the streams still closing have finished (``wait_closed``)."""
        await self.wait_closed()
        await self.engine.close()

    async def check_health(self, within: float) -> str | None:
        """Ask the engine whether it can serve; remember and return its answer (None: it can).

        An engine whose check raises or takes longer than ``within`` seconds is taken to be down. The check runs as
        a task of its own, waited for at most ``within`` seconds, so one that ignores cancellation (a call into a
        library that cannot be interrupted) holds up neither the caller nor a server's shutdown; the next poll
        waits for the same check again rather than starting a second one.
        """
        if self._health_check is None or self._health_check.done():
            self._health_check = asyncio.ensure_future(self.engine.health())
            self._health_check.add_done_callback(_consume)
        check = self._health_check
        await asyncio.wait({check}, timeout=within)
        problem: str | None
        if not check.done():
            problem = f"the {self.engine.name} engine's health check did not answer within {within:g} s"
        elif check.cancelled() or check.exception() is not None:
            error = check.exception() if not check.cancelled() else None
            reason = f"{type(error).__name__}: {error}" if error is not None else "cancelled"
            problem = f"the {self.engine.name} engine's health check failed: {reason}"
        else:
            problem = check.result()
        self.health_problem = problem
        return problem

    @property
    def reports_health(self) -> bool:
        """True when the engine implements ``health`` (only then is it worth polling)."""
        return type(self.engine).health is not Engine.health

    async def stream(
        self, prompt: str, params: SamplingParams, *, prompt_tokens: int = 0
    ) -> AsyncGenerator[Delta, None]:
        """The engine's generation of ``prompt`` as the contract's deltas.

        ``prompt_tokens`` is the prompt's length in tokens when the caller counted it; the engine's own figure
        wins when it reports one. Close the generator (or cancel the task iterating it) to stop: the engine's
        stream is closed at once.
        """
        engine_stream = self.engine.generate(prompt, params)
        if not isinstance(engine_stream, AsyncIterator):
            raise EngineError(f"the {self.engine.name} engine's generate() must return an async iterator")
        stops = None if self.engine.handles_stop_strings or not params.stop else StopStringFilter(params.stop)
        produced = 0
        cached: int | None = None  # prompt tokens the engine took from its prompt cache, when it says
        self.active += 1
        self.started += 1
        self.peak_active = max(self.peak_active, self.active)
        number = next(self._numbers)
        self._progress[number] = time.monotonic()
        try:
            async for item in engine_stream:
                self._progress[number] = time.monotonic()
                if isinstance(item, str):
                    text, engine_finish = item, None
                    produced += 1
                elif isinstance(item, Delta):
                    text, engine_finish = item.text, item.finish_reason
                    if item.completion_tokens > produced:
                        produced = item.completion_tokens
                    elif item.text and engine_finish is None:
                        produced += 1  # an engine that does not count: one token per piece
                    if item.prompt_tokens:
                        prompt_tokens = item.prompt_tokens
                    if item.cached_tokens is not None:
                        cached = item.cached_tokens
                else:
                    raise EngineError(
                        f"the {self.engine.name} engine's generate() yielded {type(item).__name__}; "
                        "it must yield str or Delta"
                    )
                finish: FinishReason | None = None
                if stops is not None:
                    text = stops.feed(text)
                    if stops.stopped:
                        finish = "stop"
                if finish is None and produced >= params.max_tokens:
                    finish = "length"
                elif finish is None and engine_finish is not None:
                    finish = engine_finish
                if finish is not None:
                    if stops is not None and not stops.stopped:
                        text += stops.flush()
                    yield Delta(text, prompt_tokens, min(produced, params.max_tokens), finish, cached)
                    return
                if text:
                    yield Delta(text, prompt_tokens, produced, None, cached)
            tail = stops.flush() if stops is not None else ""
            yield Delta(tail, prompt_tokens, produced, "length" if produced >= params.max_tokens else "stop", cached)
        finally:
            self._progress.pop(number, None)
            await self._close(engine_stream)

    async def _close(self, engine_stream: AsyncIterator[object]) -> None:
        """Close the engine's stream; the generation stops counting as active once it is closed.

        The close runs as a task of its own. A caller cancelled while the engine closes (a client's disconnect
        arrives both as a failed write, which starts the close, and as the handler's cancellation) is released at
        once, but the close is not cut short: an engine interrupted in its ``finally`` would leave its backend
        generating (an HTTP stream upstream left open, a sequence never freed).
        """
        aclose = getattr(engine_stream, "aclose", None)
        if aclose is None:
            self.active -= 1
            return
        closing = asyncio.ensure_future(_close_quietly(aclose))
        self._closing.add(closing)
        closing.add_done_callback(self._closed)
        await asyncio.shield(closing)

    def _closed(self, closing: asyncio.Future[None]) -> None:
        self._closing.discard(closing)
        self.active -= 1


async def _close_quietly(aclose: Callable[[], Awaitable[object]]) -> None:
    """Await an engine stream's ``aclose()``; what it raises was the engine's to report while it streamed."""
    with contextlib.suppress(Exception):
        await aclose()


def _consume(check: asyncio.Future[str | None]) -> None:
    """Retrieve a finished health check's exception, so that one nobody waited for is not reported as lost."""
    if not check.cancelled():
        check.exception()
