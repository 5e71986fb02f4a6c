"""The guide's echo engine keeps the promise the guide makes for it: closing its stream stops its worker thread."""

from __future__ import annotations

import threading

from sakura_echo.engine import EchoEngine, EchoOptions

from sakura_core.types import SamplingParams

PROMPT = "将下面的日文文本翻译成中文：やる気マンゴスキン"


def worker_threads() -> set[threading.Thread]:
    """The threads ``iterate_in_thread`` runs (its default name) that are still alive."""
    return {thread for thread in threading.enumerate() if thread.name == "sakura-worker" and thread.is_alive()}


def still_working(threads: set[threading.Thread]) -> set[threading.Thread]:
    """Of ``threads``, those still alive after a short join: a thread that has done its work may need a moment to
    exit after telling the loop so, while one that still decodes sleeps out its token (0.2 s here)."""
    for thread in threads:
        thread.join(timeout=0.05)
    return {thread for thread in threads if thread.is_alive()}


async def test_closing_a_stream_mid_generation_stops_its_thread_before_aclose_returns() -> None:
    # A token delay long enough that the thread is still decoding when the stream is closed after one token.
    engine = EchoEngine(EchoOptions(token_delay=0.2))
    await engine.load("sakura-echo-v1.0")
    before = worker_threads()
    stream = engine.generate(PROMPT, SamplingParams(max_tokens=50, do_sample=False))
    assert await anext(stream) == "や"
    assert worker_threads() - before, "the echo engine decodes in a worker thread"
    await stream.aclose()  # type: ignore[attr-defined]
    left = still_working(worker_threads() - before)
    assert not left, f"the worker thread still runs after aclose() returned: {left}"
    await engine.close()


async def test_a_stream_run_to_its_end_leaves_no_thread() -> None:
    engine = EchoEngine(EchoOptions())
    await engine.load("sakura-echo-v1.0")
    before = worker_threads()
    tokens = [token async for token in engine.generate(PROMPT, SamplingParams(max_tokens=50, do_sample=False))]
    assert "".join(tokens) == "やる気マンゴスキン"
    assert not still_working(worker_threads() - before)
    await engine.close()
