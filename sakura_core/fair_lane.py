"""A lane of work that runs one call at a time in a thread of its own, taking turns between the callers' owners.

Counting a long prompt's tokens costs a client-chosen amount of CPU. The runner counts long texts one at a time,
so that a flood of them cannot take every core from decoding; a plain queue would then let one client that sends
many long prompts make everyone else's wait behind all of them. Here each owner (a client address) has its own
queue and the lane serves the owners in turn: one call of each waiting owner, then the next round.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Call = tuple[Callable[[Any], Any], Any, "asyncio.Future[Any]"]


class FairLane:
    """Runs ``fn(arg)`` calls in one thread, one at a time, round robin between owners."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self._pool: ThreadPoolExecutor | None = None
        #: Waiting calls per owner; the dict's order is the order of turns.
        self._queues: dict[Hashable, deque[Call]] = {}
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Calls not yet started."""
        return sum(len(queue) for queue in self._queues.values())

    async def run(self, owner: Hashable, fn: Callable[[Any], Any], arg: Any) -> Any:
        """``fn(arg)`` in the lane's thread, when ``owner``'s turn comes. Cancelling the caller drops a call that
        has not started (one that runs finishes in its thread, its result unused)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queues.setdefault(owner, deque()).append((fn, arg, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queues:
            owner = next(iter(self._queues))
            queue = self._queues.pop(owner)
            fn, arg, future = queue.popleft()
            if queue:
                self._queues[owner] = queue  # the owner's next call waits for the others' turns
            if future.done():  # its caller went away
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.thread_name)
            try:
                result = await loop.run_in_executor(self._pool, fn, arg)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        """Stop the thread (a call in progress finishes) and fail the calls still waiting."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        for queue in self._queues.values():
            for _fn, _arg, future in queue:
                if not future.done():
                    future.cancel()
        self._queues.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
