"""The engine contract's checks, each a plain async function that raises ConformanceError on a violation.

Every check takes a loaded engine and one or more raw prompts. Generations run as the server runs them: through
``sakura_core.engine_runner.EngineRunner``, which applies the rules every engine shares (the finish rules, the
token counts an engine leaves out). What is checked is what only the engine can get right: the text it generates
(whole characters, no end-of-sequence text), determinism, seeds, concurrency, token counts it reports, stop strings
when it matches them itself, that a cancelled generation frees what the engine holds, and that the event loop stays
free while it generates.

They are written for tiny random-weight models too: outputs may be gibberish and may end early, so a check that
needs a long enough output picks, among the prompts it is given, one whose greedy output is long enough, and says
so when none is.

``EngineConformance`` (in ``sakura_core.testing.conformance``) runs all of them as pytest tests; call them
directly to test a single property or to build your own suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sakura_core.engine import Engine
from sakura_core.engine_runner import EngineRunner
from sakura_core.testing.heap import frozen_heap
from sakura_core.types import Delta, ModelInfo, SamplingParams

#: Tokens per generation in the checks: small, so that CPU tests of real engines stay fast.
DEFAULT_MAX_TOKENS = 16
#: Seconds one generation may take before a check gives up on it.
DEFAULT_TIME_LIMIT = 120.0
#: Seconds an engine has to report no active generation after a cancelled one.
RELEASE_TIMEOUT = 1.0
#: Seconds a health check may take.
HEALTH_TIMEOUT = 5.0
#: Most generations the concurrency check runs at once, whatever the engine's parallelism.
DEFAULT_CONCURRENCY_LIMIT = 16
#: A stop string no model output contains, to check that several stop strings may be given.
UNLIKELY_STOP = "\u2603never\u2603"
#: Sampling settings of the seeded-sampling check: wide enough that the seed matters.
SAMPLED = {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 0}
REPLACEMENT_CHARACTER = "\ufffd"
#: Seconds between the ticks of the task that watches the event loop while an engine generates.
LOOP_TICK = 0.005
#: Most seconds the event loop may stay blocked at a stretch while an engine generates.
DEFAULT_BLOCK_LIMIT = 0.2


class ConformanceError(AssertionError):
    """An engine broke the engine contract. The message says which rule, on which prompt, with what output."""


@dataclass
class GenerationRun:
    """Every delta of one generation, with what they add up to."""

    prompt: str
    params: SamplingParams
    deltas: list[Delta] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The deltas' texts joined."""
        return "".join(delta.text for delta in self.deltas)

    @property
    def last(self) -> Delta:
        """The last delta (an empty one when the stream yielded none)."""
        return self.deltas[-1] if self.deltas else Delta()

    @property
    def finish_reason(self) -> str | None:
        """The last delta's finish reason."""
        return self.last.finish_reason

    @property
    def completion_tokens(self) -> int:
        """The last delta's completion token count."""
        return self.last.completion_tokens

    def describe(self) -> str:
        """A short account of the run for error messages."""
        return (
            f"prompt {_short(self.prompt)} with {_describe_params(self.params)} gave {len(self.deltas)} deltas, "
            f"text {_short(self.text)}, completion_tokens={self.completion_tokens}, "
            f"finish_reason={self.finish_reason!r}"
        )


def _short(text: str, limit: int = 60) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr("…" + text[-limit:])


def _describe_params(params: SamplingParams) -> str:
    fields = params.model_dump(exclude_defaults=True)
    return "SamplingParams(" + ", ".join(f"{key}={value!r}" for key, value in fields.items()) + ")"


def greedy(max_tokens: int, **changes: Any) -> SamplingParams:
    """Greedy sampling parameters with ``max_tokens`` and any other field changed."""
    return SamplingParams(max_tokens=max_tokens, do_sample=False, **changes)


def _prompt_list(prompts: str | Sequence[str]) -> list[str]:
    found = [prompts] if isinstance(prompts, str) else list(prompts)
    if not found:
        raise ConformanceError("the check needs at least one prompt")
    return found


async def run_generation(
    engine: Engine, prompt: str, params: SamplingParams, *, time_limit: float = DEFAULT_TIME_LIMIT
) -> GenerationRun:
    """Run one generation to its end, as the server runs it, and keep every delta.

    A generation that raises, yields something other than ``str`` or ``Delta``, or outlasts ``time_limit`` seconds
    is a ConformanceError.
    """
    run = GenerationRun(prompt, params)
    runner = EngineRunner(engine)
    stream = runner.stream(prompt, params, prompt_tokens=await _count(runner, prompt))
    try:
        async with asyncio.timeout(time_limit):
            async for delta in stream:
                if not isinstance(delta.text, str):
                    raise ConformanceError(
                        f"generate() must yield str or Delta with str text, got {delta!r} (prompt {_short(prompt)})"
                    )
                run.deltas.append(delta)
    except TimeoutError:
        raise ConformanceError(
            f"generation did not finish within {time_limit:g} s: prompt {_short(prompt)}, "
            f"{len(run.deltas)} deltas so far"
        ) from None
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(
            f"generate() raised {type(exc).__name__}: {exc} (prompt {_short(prompt)}, {_describe_params(params)})"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    return run


async def _count(runner: EngineRunner, text: str) -> int:
    """The engine's token count of ``text``, as the server obtains it."""
    try:
        return await runner.count_tokens(text)
    except Exception as exc:
        raise ConformanceError(f"count_tokens({_short(text)}) raised {type(exc).__name__}: {exc}") from exc


async def _pick_long_output(
    engine: Engine, prompts: Sequence[str], *, min_deltas: int, max_tokens: int, time_limit: float, purpose: str
) -> GenerationRun:
    """The greedy run of the first prompt whose output has at least ``min_deltas`` non-empty text pieces."""
    runs = []
    for prompt in prompts:
        run = await run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit)
        if sum(1 for delta in run.deltas if delta.text) >= min_deltas:
            return run
        runs.append(run)
    outputs = "; ".join(_short(run.text, 20) for run in runs)
    raise ConformanceError(
        f"{purpose} needs a greedy output of at least {min_deltas} text pieces within {max_tokens} tokens, but "
        f"every prompt ended sooner ({outputs}); give the check more or other prompts (conformance_prompts)"
    )


def _expect_finished(run: GenerationRun) -> None:
    if not run.deltas:
        raise ConformanceError(f"generate() yielded no delta: {run.describe()}")
    for index, delta in enumerate(run.deltas[:-1]):
        if delta.finish_reason is not None:
            raise ConformanceError(
                f"delta {index} of {len(run.deltas)} has finish_reason={delta.finish_reason!r}; only the last "
                f"delta may carry one: {run.describe()}"
            )
    if run.finish_reason not in ("stop", "length"):
        raise ConformanceError(
            f"the last delta must have finish_reason 'stop' or 'length', got {run.finish_reason!r}: {run.describe()}"
        )


def _expect_same(first: GenerationRun, second: GenerationRun, what: str) -> None:
    if (first.text, first.completion_tokens, first.finish_reason) != (
        second.text,
        second.completion_tokens,
        second.finish_reason,
    ):
        raise ConformanceError(f"{what}: first run: {first.describe()}; second run: {second.describe()}")


async def check_engine_basics(engine: Engine) -> None:
    """The loaded engine describes itself: ``model_info``, a positive ``parallelism``, no active generation."""
    info = engine.model_info
    if not isinstance(info, ModelInfo):
        raise ConformanceError(f"engine.model_info must be the ModelInfo that load() returned, got {info!r}")
    if info.context_length <= 0:
        raise ConformanceError(f"model_info.context_length must be positive, got {info.context_length}")
    if not isinstance(engine.parallelism, int) or engine.parallelism < 1:
        raise ConformanceError(f"engine.parallelism must be an int of at least 1, got {engine.parallelism!r}")
    if engine.active_generations != 0:
        raise ConformanceError(f"an idle engine must report active_generations == 0, got {engine.active_generations}")
    runner = EngineRunner(engine)
    for text in ("", "a", "将下面的日文文本翻译成中文：やる気マンゴスキン"):
        await _count(runner, text)
    problem = await runner.check_health(within=HEALTH_TIMEOUT)
    if problem is not None:
        raise ConformanceError(f"a loaded engine must report itself healthy (health() is None), got {problem!r}")


async def check_deltas_join(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Deltas carry new text only, and join to the full output.

    A streamed greedy run is compared with a second greedy run of the same prompt (same text), with a run cut at
    half its tokens (whose text must be a prefix of the full text: a last delta that repeats the output breaks
    this), with a run cut at the output's own length when it ended by itself (same text), and with the output's
    length in tokens (deltas that repeat the text so far make it far longer than the tokens generated).
    """
    run = await _pick_long_output(
        engine, _prompt_list(prompts), min_deltas=2, max_tokens=max_tokens, time_limit=time_limit, purpose="deltas_join"
    )
    again = await run_generation(engine, run.prompt, run.params, time_limit=time_limit)
    _expect_same(run, again, "two greedy runs of one prompt joined to different outputs")
    retokenized = await _count(EngineRunner(engine), run.text)
    if retokenized > 4 * run.completion_tokens + 8:
        raise ConformanceError(
            f"the joined deltas are {retokenized} tokens long for {run.completion_tokens} generated tokens: deltas "
            f"must carry only new text, not the text so far: {run.describe()}"
        )
    half = run.completion_tokens // 2
    if half >= 1:
        cut = await run_generation(engine, run.prompt, greedy(half), time_limit=time_limit)
        prefix = cut.text.rstrip(REPLACEMENT_CHARACTER)
        if not run.text.startswith(prefix):
            raise ConformanceError(
                f"a greedy run cut at {half} tokens must be a prefix of the same run with {max_tokens} tokens: "
                f"cut run: {cut.describe()}; full run: {run.describe()}"
            )
        streamed_so_far = "".join(d.text for d in run.deltas if d.completion_tokens <= half)
        if not cut.text.startswith(streamed_so_far.rstrip(REPLACEMENT_CHARACTER)):
            raise ConformanceError(
                f"the text streamed within the first {half} tokens ({_short(streamed_so_far)}) is not what a run "
                f"cut at {half} tokens outputs: {cut.describe()}"
            )
    if run.finish_reason == "stop" and run.completion_tokens >= 1:
        exact = await run_generation(engine, run.prompt, greedy(run.completion_tokens), time_limit=time_limit)
        if exact.text != run.text:
            raise ConformanceError(
                f"a greedy run cut at its own length ({run.completion_tokens} tokens) must output the same text as "
                f"the run that ended by itself (a last delta must not repeat the output): cut run: "
                f"{exact.describe()}; full run: {run.describe()}"
            )


async def check_finish_reasons(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Only the last delta carries a finish reason, and it is ``"stop"`` or ``"length"``; none comes after it."""
    for prompt in _prompt_list(prompts)[:3]:
        for params in (greedy(max_tokens), greedy(1), SamplingParams(max_tokens=max_tokens, seed=7, **SAMPLED)):
            _expect_finished(await run_generation(engine, prompt, params, time_limit=time_limit))


async def check_max_tokens(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """``max_tokens`` is honoured exactly: never more tokens, and ``completion_tokens == max_tokens`` exactly when
    ``finish_reason == "length"``."""
    limits = sorted({1, 2, max(1, max_tokens // 2), max_tokens})
    for prompt in _prompt_list(prompts)[:3]:
        for limit in limits:
            for params in (greedy(limit), SamplingParams(max_tokens=limit, seed=11, **SAMPLED)):
                run = await run_generation(engine, prompt, params, time_limit=time_limit)
                _expect_finished(run)
                over = [d.completion_tokens for d in run.deltas if d.completion_tokens > limit]
                if over:
                    raise ConformanceError(
                        f"max_tokens={limit} was exceeded: a delta reports completion_tokens={over[0]}: "
                        f"{run.describe()}"
                    )
                at_limit = run.completion_tokens == limit
                if at_limit != (run.finish_reason == "length"):
                    raise ConformanceError(
                        f"completion_tokens must equal max_tokens={limit} exactly when finish_reason is 'length': "
                        f"{run.describe()}"
                    )


def _stop_string_for(run: GenerationRun) -> str | None:
    """A short piece of ``run``'s output, away from its ends and spanning two deltas where possible."""
    text = run.text
    if len(text) < 3:
        return None
    boundaries: list[int] = []
    position = 0
    for delta in run.deltas:
        position += len(delta.text)
        boundaries.append(position)
    middle = len(text) / 2
    candidates = sorted((b for b in boundaries if 2 <= b <= len(text) - 1), key=lambda b: abs(b - middle))
    starts = [b - 1 for b in candidates] + list(range(1, len(text) - 1))
    for start in starts:
        stop = text[start : start + 2]
        if len(stop) == 2 and REPLACEMENT_CHARACTER not in stop and stop.strip() and start + 2 < len(text):
            return stop
    return None


async def check_stop_strings(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """A stop string ends the output before it and is never emitted.

    A piece of a greedy output (spanning two deltas where possible) becomes a stop string, next to one that never
    occurs; the greedy rerun must output exactly the text before the stop string's first occurrence, with
    ``finish_reason == "stop"``.
    """
    prompt_list = _prompt_list(prompts)
    tried: list[str] = []
    for prompt in prompt_list:
        run = await run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit)
        stop = _stop_string_for(run)
        if stop is None:
            tried.append(_short(run.text, 20))
            continue
        expected = run.text[: run.text.find(stop)]
        stopped = await run_generation(
            engine, prompt, greedy(max_tokens, stop=[UNLIKELY_STOP, stop]), time_limit=time_limit
        )
        _expect_finished(stopped)
        if stop in stopped.text:
            raise ConformanceError(f"the stop string {stop!r} was emitted: {stopped.describe()}")
        if stopped.text != expected:
            raise ConformanceError(
                f"with stop string {stop!r} the output must be the text before it, {expected!r}: "
                f"{stopped.describe()} (without the stop string: {run.describe()})"
            )
        if stopped.finish_reason != "stop":
            raise ConformanceError(f"a generation ended by a stop string must finish 'stop': {stopped.describe()}")
        if stopped.completion_tokens > run.completion_tokens:
            raise ConformanceError(
                f"a generation ended by a stop string counted more tokens than the same run without it: "
                f"{stopped.describe()}; without: {run.describe()}"
            )
        return
    raise ConformanceError(
        f"stop_strings needs a greedy output of at least 4 characters, but every prompt gave less "
        f"({'; '.join(tried)}); give the check more or other prompts (conformance_prompts)"
    )


async def check_greedy_deterministic(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Greedy decoding gives the same output every time, whatever the seed and sampling settings say."""
    for prompt in _prompt_list(prompts)[:3]:
        first = await run_generation(engine, prompt, greedy(max_tokens, seed=1), time_limit=time_limit)
        second = await run_generation(
            engine, prompt, greedy(max_tokens, seed=2, temperature=1.0, top_p=0.9), time_limit=time_limit
        )
        _expect_same(first, second, "greedy decoding is not deterministic")


async def check_seeded_sampling(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Sampling with a seed is reproducible, also after a generation with another seed ran in between."""
    for prompt in _prompt_list(prompts)[:2]:
        seeded = SamplingParams(max_tokens=max_tokens, seed=1234, **SAMPLED)
        first = await run_generation(engine, prompt, seeded, time_limit=time_limit)
        other = seeded.model_copy(update={"seed": 4321})
        await run_generation(engine, prompt, other, time_limit=time_limit)
        again = await run_generation(engine, prompt, seeded, time_limit=time_limit)
        _expect_same(first, again, "sampling with seed 1234 gave different outputs")


async def _wait_until_idle(engine: Engine, after: str) -> None:
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while engine.active_generations != 0:
        if time.monotonic() > deadline:
            raise ConformanceError(
                f"{after}, the engine still reports {engine.active_generations} active generation(s) after "
                f"{RELEASE_TIMEOUT:g} s: a cancelled generation must free its sequence promptly (try/finally)"
            )
        await asyncio.sleep(0.01)


async def _cancel_with_aclose(engine: Engine, prompt: str, params: SamplingParams, time_limit: float) -> None:
    raw = engine.generate(prompt, params)
    if getattr(raw, "aclose", None) is None:
        raise ConformanceError("generate() must return an async generator (one with aclose())")
    await raw.aclose()  # type: ignore[attr-defined]
    stream = EngineRunner(engine).stream(prompt, params)
    aclose = stream.aclose
    try:
        async with asyncio.timeout(time_limit):
            first = await anext(stream)
    except TimeoutError:
        await aclose()
        raise ConformanceError(f"no delta within {time_limit:g} s (prompt {_short(prompt)})") from None
    except Exception as exc:
        raise ConformanceError(f"generate() raised {type(exc).__name__}: {exc} (prompt {_short(prompt)})") from exc
    if first.finish_reason is not None:
        await aclose()
        raise ConformanceError(
            f"the first delta already finished the generation ({first!r}) although its greedy output is longer"
        )
    await aclose()
    await _wait_until_idle(engine, "after aclose() mid-stream")


async def _cancel_task(engine: Engine, prompt: str, params: SamplingParams, time_limit: float, *, pause: bool) -> bool:
    """Cancel the task iterating a generation once its first delta arrived; False when it had finished by then.

    With ``pause`` the task waits after the first delta, so the cancellation reaches it outside the engine and the
    abandoned stream is closed by asyncio's async-generator finalizer. Without, the task keeps iterating and the
    cancellation reaches it where it waits for the engine's next delta, unless the engine had them all ready.
    """
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for _delta in EngineRunner(engine).stream(prompt, params):
            first_delta.set()
            if pause:
                await asyncio.Event().wait()

    task = asyncio.create_task(consume())
    waiter = asyncio.create_task(first_delta.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        exc = task.exception()
        if exc is not None:
            raise ConformanceError(f"generate() raised {type(exc).__name__}: {exc} (prompt {_short(prompt)})") from exc
        return False
    if not first_delta.is_set():
        task.cancel()
        raise ConformanceError(f"no delta within {time_limit:g} s (prompt {_short(prompt)})")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    where = "while it waited for a delta" if not pause else "while it paused between deltas"
    await _wait_until_idle(engine, f"after cancelling the task iterating a generation {where}")
    return True


async def check_cancellation(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Stopping a generation mid-stream frees the engine, and the engine still generates correctly afterwards.

    The ways a caller stops are tried in turn: ``aclose()`` on the stream; ``cancel()`` on the task iterating it
    while that task pauses between deltas (the abandoned stream is closed by asyncio's finalizer); and ``cancel()``
    while the task waits for the engine's next delta (tried up to three times, since an engine may have the whole
    output ready before the task can be cancelled). Each time ``active_generations`` must be back to 0 within a
    second (0 throughout is an engine that reports nothing: it passes), and a greedy run afterwards must give the
    same output as before.
    """
    if engine.active_generations != 0:
        raise ConformanceError(f"the engine reports {engine.active_generations} active generation(s) before the check")
    long_tokens = 4 * max_tokens
    reference = await _pick_long_output(
        engine,
        _prompt_list(prompts),
        min_deltas=2,
        max_tokens=long_tokens,
        time_limit=time_limit,
        purpose="cancellation",
    )
    prompt = reference.prompt
    await _cancel_with_aclose(engine, prompt, greedy(long_tokens), time_limit)
    if not await _cancel_task(engine, prompt, greedy(long_tokens), time_limit, pause=True):
        raise ConformanceError(f"the generation ended before its first delta was handled: {reference.describe()}")
    for attempt in range(1, 4):
        if await _cancel_task(engine, prompt, greedy(long_tokens * attempt), time_limit, pause=False):
            break
        await _wait_until_idle(engine, "after a complete generation")
    after = await run_generation(engine, prompt, reference.params, time_limit=time_limit)
    _expect_same(reference, after, "after cancelled generations the engine's greedy output changed")
    await _wait_until_idle(engine, "after a complete generation")


async def check_concurrent_generations(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    limit: int = DEFAULT_CONCURRENCY_LIMIT,
) -> None:
    """Generations running together do not mix: ``parallelism`` different prompts (up to ``limit``), run at once
    with greedy decoding, each give exactly their solo output."""
    prompt_list = _prompt_list(prompts)
    count = max(1, min(engine.parallelism, limit))
    chosen = [prompt_list[i % len(prompt_list)] for i in range(count)]
    solo = {}
    for prompt in dict.fromkeys(chosen):
        solo[prompt] = await run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit)
    together = await asyncio.gather(
        *(run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit) for prompt in chosen)
    )
    for index, run in enumerate(together):
        _expect_finished(run)
        _expect_same(
            solo[run.prompt], run, f"generation {index} of {count} run together differs from the same prompt run alone"
        )


async def check_token_counts(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Every delta reports ``prompt_tokens == engine.count_tokens(prompt)``; ``completion_tokens`` never goes down,
    is positive once text was emitted, and never exceeds ``max_tokens``."""
    for prompt in _prompt_list(prompts)[:3]:
        expected_prompt_tokens = await _count(EngineRunner(engine), prompt)
        if expected_prompt_tokens <= 0:
            raise ConformanceError(f"count_tokens() of a non-empty prompt must be positive: {_short(prompt)}")
        for params in (greedy(max_tokens), SamplingParams(max_tokens=max_tokens, seed=3, **SAMPLED)):
            run = await run_generation(engine, prompt, params, time_limit=time_limit)
            _expect_finished(run)
            previous = 0
            emitted = False
            for index, delta in enumerate(run.deltas):
                where = f"delta {index} of {len(run.deltas)} ({delta!r})"
                if delta.prompt_tokens != expected_prompt_tokens:
                    raise ConformanceError(
                        f"{where} reports prompt_tokens={delta.prompt_tokens}, but count_tokens(prompt) is "
                        f"{expected_prompt_tokens}: {run.describe()}"
                    )
                if delta.completion_tokens < previous:
                    raise ConformanceError(f"{where}: completion_tokens went down from {previous}: {run.describe()}")
                emitted = emitted or bool(delta.text)
                if emitted and delta.completion_tokens < 1:
                    raise ConformanceError(f"{where}: text was emitted but completion_tokens is 0: {run.describe()}")
                if delta.completion_tokens > params.max_tokens:
                    raise ConformanceError(f"{where}: completion_tokens exceeds max_tokens: {run.describe()}")
                previous = delta.completion_tokens


class _LoopWatch:
    """A task on the event loop that wakes every ``interval`` seconds and keeps its worst lateness: the longest the
    loop was kept from running it, which is how long anything else on the loop (every other request) waited.

    The heap that existed before the watch is frozen meanwhile (``frozen_heap``): a collection among a long test
    process's objects is not the engine's blocking."""

    def __init__(self, interval: float = LOOP_TICK) -> None:
        self.interval = interval
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None
        self._frozen = contextlib.ExitStack()

    async def __aenter__(self) -> _LoopWatch:
        self._frozen.enter_context(frozen_heap())
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # the first tick is scheduled before the caller's work starts
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            self._frozen.close()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.worst = max(self.worst, loop.time() - due)


async def check_event_loop_responsive(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    block_limit: float = DEFAULT_BLOCK_LIMIT,
) -> None:
    """The event loop stays responsive while the engine generates: an engine that decodes on the loop fails.

    A task on the loop ticks every few milliseconds while greedy generations of the first two prompts run, alone
    and then together, and keeps how late its worst tick came. Later than ``block_limit`` seconds means that
    something in ``generate`` (or what it calls) blocked the loop for that long: in the server, every other
    request, stream and ``/health`` would have waited as long.
    """
    chosen = _prompt_list(prompts)[:2]
    async with _LoopWatch() as watch:
        for prompt in chosen:
            await run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit)
        await asyncio.gather(
            *(run_generation(engine, prompt, greedy(max_tokens), time_limit=time_limit) for prompt in chosen)
        )
    if watch.worst > block_limit:
        raise ConformanceError(
            f"the event loop was blocked for {watch.worst:.3f} s at a stretch while the engine generated (at most "
            f"{block_limit:g} s allowed; prompt {_short(chosen[0])}): generate() runs blocking work on the event "
            f"loop, which stalls every other request meanwhile. Decode with a synchronous library in a worker "
            f"thread (sakura_core.threaded.iterate_in_thread) or await an asynchronous one"
        )


class _Observed:
    """An engine whose raw stream is recorded while the core runs it as the server does.

    The core hides some of what an engine yields (it stops reading at ``max_tokens``, clamps the counts it reports
    and fills in missing ones); the checks of the engine's own figures look at what the engine yielded.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.items: list[object] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[object]:
        self.items = []
        return self._record(self._engine.generate(prompt, params))

    async def _record(self, stream: AsyncIterator[object]) -> AsyncGenerator[object, None]:
        try:
            async for item in stream:
                self.items.append(item)
                yield item
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def _end_text_in(text: str, end_texts: Sequence[str]) -> str | None:
    return next((end for end in end_texts if end and end in text), None)


async def check_output_text(
    engine: Engine,
    prompts: str | Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    end_texts: Sequence[str] = (),
    allow_replacement_character: bool = False,
) -> None:
    """What the engine outputs is text a client can use, and its counts are within the request's limit.

    For greedy and sampled runs of the first three prompts (no stop strings asked for): no piece of text holds
    U+FFFD (a UTF-8 character split across pieces, decoded piece by piece); no ``end_texts`` appear in the output
    (the model's end-of-sequence text, such as ``<|im_end|>`` or ``</s>``: an engine stops at the end token and
    emits nothing for it); and no delta the engine yields reports ``completion_tokens`` above ``max_tokens``
    (which the core would hide by clamping: counting the end token or the prompt in it, say).

    ``allow_replacement_character`` is for a random-weight test model only: its tokens are arbitrary bytes, so its
    output holds byte sequences that are no UTF-8 at all, which a correct engine does turn into U+FFFD. A trained
    model's translation never does.
    """
    observed = _Observed(engine)
    as_engine = cast(Engine, observed)
    for prompt in _prompt_list(prompts)[:3]:
        for params in (greedy(max_tokens), SamplingParams(max_tokens=max_tokens, seed=5, **SAMPLED)):
            run = await run_generation(as_engine, prompt, params, time_limit=time_limit)
            _expect_finished(run)
            for index, item in enumerate(observed.items):
                if isinstance(item, Delta) and item.completion_tokens > params.max_tokens:
                    raise ConformanceError(
                        f"item {index} the engine yielded ({item!r}) reports completion_tokens="
                        f"{item.completion_tokens}, above max_tokens={params.max_tokens}: count only the tokens "
                        f"generated, without the end-of-sequence token or the prompt: {run.describe()}"
                    )
            split = next((d for d in run.deltas if REPLACEMENT_CHARACTER in d.text), None)
            if split is not None and not allow_replacement_character:
                raise ConformanceError(
                    f"a piece of text holds U+FFFD ({split.text!r}): a UTF-8 character was split across tokens and "
                    f"decoded piece by piece; hold back a character's bytes until it is complete: {run.describe()}"
                )
            end = _end_text_in(run.text, end_texts)
            if end is not None:
                raise ConformanceError(
                    f"the output contains the end-of-sequence text {end!r}: stop when the model emits its end "
                    f"token and yield nothing for it: {run.describe()}"
                )
