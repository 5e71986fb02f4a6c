"""The rules the core keeps around any engine (EngineRunner), and the thread helper for blocking libraries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from sakura_core.engine import Engine, EngineError
from sakura_core.engine_runner import EngineRunner
from sakura_core.threaded import iterate_in_thread
from sakura_core.types import Delta, ModelInfo, SamplingParams


class ScriptEngine(Engine):
    """Yields a fixed list of items (str or Delta) and records whether its stream was closed.

    With ``close_seconds``, closing the stream takes that long (as closing an HTTP stream upstream does).
    """

    name = "script"

    def __init__(self, items: list[Delta | str], *, handles_stops: bool = False, close_seconds: float = 0) -> None:
        super().__init__()
        self.items = items
        self.closed = 0
        self.closing = asyncio.Event()
        self.close_seconds = close_seconds
        self.handles_stop_strings = handles_stops  # type: ignore[misc]

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return len(text)

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta | str]:
        try:
            for item in self.items:
                await asyncio.sleep(0)
                yield item
        finally:
            self.closing.set()
            if self.close_seconds:
                await asyncio.sleep(self.close_seconds)
            self.closed += 1


async def run(engine: Engine, params: SamplingParams, prompt_tokens: int = 7) -> list[Delta]:
    return [delta async for delta in EngineRunner(engine).stream("p", params, prompt_tokens=prompt_tokens)]


def summary(deltas: list[Delta]) -> tuple[str, int, str | None, list[int]]:
    """Joined text, final count, final reason, and the position of every delta that has a finish reason."""
    finals = [i for i, d in enumerate(deltas) if d.finish_reason is not None]
    return "".join(d.text for d in deltas), deltas[-1].completion_tokens, deltas[-1].finish_reason, finals


async def test_each_str_is_one_token_and_the_end_of_the_stream_is_stop() -> None:
    deltas = await run(ScriptEngine(["a", "b", "c"]), SamplingParams(max_tokens=10))
    assert summary(deltas) == ("abc", 3, "stop", [len(deltas) - 1])
    assert [d.completion_tokens for d in deltas] == [1, 2, 3, 3]
    assert {d.prompt_tokens for d in deltas} == {7}


async def test_the_stream_is_cut_at_max_tokens_with_length_and_the_engine_closed() -> None:
    engine = ScriptEngine(list("abcdefgh"))
    deltas = await run(engine, SamplingParams(max_tokens=3))
    assert summary(deltas) == ("abc", 3, "length", [2])
    assert engine.closed == 1


async def test_exactly_max_tokens_then_the_end_is_length() -> None:
    deltas = await run(ScriptEngine(list("abc")), SamplingParams(max_tokens=3))
    assert summary(deltas)[1:3] == (3, "length")


async def test_stop_strings_end_the_output_before_them_across_pieces() -> None:
    engine = ScriptEngine(["a", "<|im", "_end|>", "b"])
    deltas = await run(engine, SamplingParams(max_tokens=10, stop=["<|im_end|>"]))
    assert summary(deltas) == ("a", 3, "stop", [len(deltas) - 1])
    assert engine.closed == 1


async def test_text_held_back_for_a_possible_stop_string_is_released() -> None:
    deltas = await run(ScriptEngine(["a", "<|im", "x"]), SamplingParams(max_tokens=10, stop=["<|im_end|>"]))
    assert summary(deltas)[:3] == ("a<|imx", 3, "stop")
    cut = await run(ScriptEngine(["a", "<|im", "x"]), SamplingParams(max_tokens=2, stop=["<|im_end|>"]))
    assert summary(cut)[:3] == ("a<|im", 2, "length")


async def test_an_engine_that_matches_stop_strings_itself_is_not_filtered_again() -> None:
    engine = ScriptEngine(["a", "<|im_end|>", "b"], handles_stops=True)
    deltas = await run(engine, SamplingParams(max_tokens=10, stop=["<|im_end|>"]))
    assert summary(deltas)[0] == "a<|im_end|>b"


async def test_an_engines_counts_and_finish_reason_are_kept() -> None:
    engine = ScriptEngine([Delta("ab", 5, 2), Delta("cd", 5, 4), Delta("", 5, 4, "stop")])
    deltas = await run(engine, SamplingParams(max_tokens=10))
    assert summary(deltas) == ("abcd", 4, "stop", [2])
    assert {d.prompt_tokens for d in deltas} == {5}  # the engine's own prompt count wins


async def test_a_delta_without_counts_is_one_token_and_nothing_follows_the_finish() -> None:
    engine = ScriptEngine([Delta("a"), Delta("b"), Delta("", finish_reason="stop"), Delta("late")])
    deltas = await run(engine, SamplingParams(max_tokens=10))
    assert summary(deltas) == ("ab", 2, "stop", [2])
    assert engine.closed == 1


async def test_a_count_past_max_tokens_is_clamped_and_says_length() -> None:
    deltas = await run(ScriptEngine([Delta("abc", 0, 3), Delta("def", 0, 6)]), SamplingParams(max_tokens=4))
    assert summary(deltas)[1:3] == (4, "length")


async def test_anything_but_str_or_delta_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="yielded int; it must yield str or Delta"):
        await run(ScriptEngine([1]), SamplingParams())  # type: ignore[list-item]


async def test_closing_early_closes_the_engines_stream_and_counts_it_out() -> None:
    engine = ScriptEngine(list("abcdef"))
    runner = EngineRunner(engine)
    stream = runner.stream("p", SamplingParams(max_tokens=10))
    assert (await anext(stream)).text == "a"
    assert runner.active == 1
    await stream.aclose()
    assert (runner.active, runner.peak_active, runner.started, engine.closed) == (0, 1, 1, 1)


async def test_a_caller_cancelled_while_the_engine_closes_does_not_cut_the_close_short() -> None:
    # a client's disconnect reaches the handler twice: its write fails (the stream is closed) and its task is cancelled
    engine = ScriptEngine(list("abcdef"), close_seconds=0.05)
    runner = EngineRunner(engine)
    stream = runner.stream("p", SamplingParams(max_tokens=10))
    assert (await anext(stream)).text == "a"
    caller = asyncio.ensure_future(stream.aclose())
    await engine.closing.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert (runner.active, engine.closed) == (1, 0)  # the caller is released at once
    await runner.wait_closed()
    assert (runner.active, engine.closed) == (0, 1)


async def test_an_async_count_is_awaited_and_a_wrong_count_is_an_engine_error() -> None:
    class AsyncCount(ScriptEngine):
        async def count_tokens(self, text: str) -> int:  # type: ignore[override]
            return 2 * len(text)

    assert await EngineRunner(AsyncCount([])).count_tokens("abc") == 6

    class WrongCount(ScriptEngine):
        def count_tokens(self, text: str) -> int:
            return "3"  # type: ignore[return-value]

    with pytest.raises(EngineError, match="counted '3' tokens"):
        await EngineRunner(WrongCount([])).count_tokens("abc")


async def test_health_that_hangs_or_raises_means_down() -> None:
    class Hangs(ScriptEngine):
        async def health(self) -> str | None:
            await asyncio.sleep(10)
            return None

    class Raises(ScriptEngine):
        async def health(self) -> str | None:
            raise RuntimeError("boom")

    hangs = EngineRunner(Hangs([]))
    assert hangs.reports_health
    assert await hangs.check_health(within=0.05) == "the script engine's health check did not answer within 0.05 s"
    assert hangs.problem is not None
    assert await EngineRunner(Raises([])).check_health(within=1) == (
        "the script engine's health check failed: RuntimeError: boom"
    )
    assert not EngineRunner(ScriptEngine([])).reports_health


# ------------------------------------------------------------------------------------------------ iterate_in_thread


async def test_items_come_from_another_thread_in_order() -> None:
    threads: set[str] = set()

    def produce() -> Iterator[int]:
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert [i async for i in iterate_in_thread(produce)] == list(range(100))
    assert threading.current_thread().name not in threads


async def test_the_loop_is_woken_once_per_batch_not_once_per_item() -> None:
    loop = asyncio.get_running_loop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        items = [i async for i in iterate_in_thread(lambda: iter(range(20_000)))]
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    assert items == list(range(20_000))
    assert wakeups < 20_000 // 10


async def test_an_error_in_the_thread_is_raised_on_the_loop() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise ValueError("library failed")

    got = []
    with pytest.raises(ValueError, match="library failed"):
        async for item in iterate_in_thread(produce):
            got.append(item)
    assert got == [1]


async def test_closing_stops_the_thread_and_runs_its_cleanup_before_aclose_returns() -> None:
    cleaned = threading.Event()
    produced = 0

    def produce() -> Iterator[int]:
        nonlocal produced
        try:
            while True:
                time.sleep(0.005)
                produced += 1
                yield produced
        finally:
            cleaned.set()

    stream = iterate_in_thread(produce)
    assert await anext(stream) == 1
    await stream.aclose()
    assert cleaned.is_set()
    after = produced
    await asyncio.sleep(0.05)
    assert produced == after


async def test_the_loop_stays_free_while_the_thread_blocks() -> None:
    def produce() -> Iterator[int]:
        time.sleep(0.3)
        yield 1

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    assert [i async for i in iterate_in_thread(produce)] == [1]
    ticker.cancel()
    assert ticks >= 10


async def test_the_engines_cached_prompt_tokens_are_passed_on() -> None:
    engine = ScriptEngine([Delta("a", 5, 1, None, 3), Delta("b", 5, 2), Delta("", 5, 2, "stop")])
    deltas = await run(engine, SamplingParams(max_tokens=10))
    assert [d.cached_tokens for d in deltas] == [3, 3, 3]
    assert {d.cached_tokens for d in await run(ScriptEngine(["a"]), SamplingParams())} == {None}
