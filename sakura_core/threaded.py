"""Running a blocking iterator (a synchronous library's decode loop) in its own thread, as an async iterator.

For engines whose library blocks, inside an async generator::

    async with contextlib.aclosing(iterate_in_thread(lambda: model.decode(prompt))) as tokens:
        async for token in tokens:
            yield token

(``async for`` alone does not close what it iterates: an engine's stream closed mid-generation would leave the
thread running until the garbage collector closes the abandoned iterator, so ``aclosing`` is part of the idiom.)
The event loop never waits on the library; items reach it in batches (the loop is woken once per batch, not once
per item); closing the async iterator stops the thread after its current item and closes the blocking iterator
(its ``finally`` blocks run in the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Handoff:
    """Items on their way from the worker thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready = asyncio.Event()
        self.items: deque[object] = deque()
        self.lock = threading.Lock()
        self.wake_pending = False

    def post(self, item: object) -> None:
        """From the worker: queue ``item``; wake the loop unless a wake-up is already on its way."""
        with self.lock:
            self.items.append(item)
            if self.wake_pending:
                return
            self.wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self.lock:
            self.wake_pending = False
        self.ready.set()

    async def take(self) -> list[object]:
        """On the loop: wait for items and take every one queued so far."""
        await self.ready.wait()
        self.ready.clear()
        with self.lock:
            items = list(self.items)
            self.items.clear()
        return items


async def iterate_in_thread(
    produce: Callable[[], Iterator[T]], *, name: str = "sakura-worker"
) -> AsyncGenerator[T, None]:
    """Iterate ``produce()`` in a new thread and yield its items on the event loop.

    An exception raised by the iterator is raised here. Closing this generator (or cancelling the task iterating
    it) stops the thread after the item it is producing and waits for it to finish, so whatever the iterator held
    is released when this generator's ``aclose()`` returns.
    """
    loop = asyncio.get_running_loop()
    handoff = _Handoff(loop)
    stop = threading.Event()
    finished: asyncio.Future[None] = loop.create_future()

    def work() -> None:
        try:
            iterator = produce()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    handoff.post(item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            handoff.post(_Failure(exc))
        else:
            handoff.post(_END)
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, finished)

    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        while True:
            for item in await handoff.take():
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(finished)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
