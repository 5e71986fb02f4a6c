"""Host-memory buffers for saved sequence states, made and dropped in a thread of their own.

Mapping and zeroing fresh memory for a state takes longer than llama.cpp takes to copy the state into it (about
25 ms against 4.5 ms for 40 MB here), and would hold up every slot's decoding. So a spare buffer, as large as the
largest state so far, is kept ready: a save copies into it at memory speed, and this thread then gives the state a
buffer of its own size (``compact``), after which the spare comes back for the next save. Freeing a large buffer
(unmapping it) happens here too.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import mmap
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: Spare buffers are rounded up to this, so that slightly longer states still fit in them.
SPARE_GRANULE = 64 * 1024
#: A right-sized copy is made this many bytes at a time, so that the worker soon yields when the decode thread
#: copies a state itself (both copying at once slows both).
COPY_CHUNK = 4 * 1024 * 1024


def allocate(size: int) -> Any:
    """A zeroed ctypes byte array of ``size`` bytes whose pages are already mapped (one system call, with the GIL
    released, instead of a page fault per page at the first write)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    region = mmap.mmap(-1, max(size, 1), flags=flags)
    return (ctypes.c_uint8 * size).from_buffer(region)  # keeps the mapping alive; unmapped when dropped


class BufferSupply:
    """A spare buffer kept ready, right-sized copies made, and buffers dropped, by one worker thread.

    The decode thread calls ``take_spare``, ``compact``, ``finished``, ``give_back`` and ``drop``, none of which
    waits for the worker, and ``hold`` while it copies states itself (between decode steps) and ``let_go`` before a
    decode step, during which the worker does its work.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._spare: Any = None
        self.spare_size = 0  # the size the spare is made with (0: none wanted yet)
        self._held = False  # the decode thread copies states now: the worker keeps off the memory
        self._lent = 0  # spares taken and not given back: no new spare is made meanwhile (it would be a second)
        self._jobs: collections.deque[tuple[object, Any, int]] = collections.deque()  # (key, buffer, bytes used)
        self._done: list[tuple[object, Any]] = []  # (key, its right-sized copy)
        self._dropped: list[Any] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sakura-llamacpp-host-buffers", daemon=True)
        self._thread.start()

    def want(self, size: int) -> None:
        """Make the spare at least ``size`` bytes from now on."""
        rounded = -(-size // SPARE_GRANULE) * SPARE_GRANULE
        with self._cond:
            if rounded > self.spare_size:
                self.spare_size = rounded
                if self._spare is not None and len(self._spare) < rounded:
                    self._dropped.append(self._spare)
                    self._spare = None
                self._cond.notify()

    def take_spare(self, size: int) -> Any | None:
        """The spare buffer, if one of at least ``size`` bytes is ready (the worker starts on the next one)."""
        with self._cond:
            spare = self._spare
            if spare is None or len(spare) < size:
                return None
            self._spare = None
            self._lent += 1
            return spare

    def compact(self, key: object, buffer: Any, used: int) -> None:
        """Copy the first ``used`` bytes of ``buffer`` into one of their own size; ``finished`` hands it over."""
        with self._cond:
            self._jobs.append((key, buffer, used))
            self._cond.notify()

    def finished(self) -> list[tuple[object, Any]]:
        """The right-sized copies made since the last call, with the keys ``compact`` was given."""
        with self._cond:
            done, self._done = self._done, []
            return done

    def give_back(self, buffer: Any, *, lent: bool = True) -> None:
        """A buffer no longer used: the spare again if it is large enough and none is ready, else dropped.
        ``lent``: it is a spare that ``take_spare`` gave out."""
        with self._cond:
            if lent:
                self._lent -= 1
            if self._spare is None and len(buffer) >= self.spare_size:
                self._spare = buffer
            else:
                self._dropped.append(buffer)
            self._cond.notify()

    def drop(self, buffer: Any) -> None:
        """Free ``buffer`` in the worker thread."""
        with self._cond:
            self._dropped.append(buffer)
            self._cond.notify()

    def hold(self) -> None:
        """Keep the worker from starting more work until ``let_go`` (what it is doing, it finishes)."""
        with self._cond:
            self._held = True

    def let_go(self) -> None:
        """Let the worker work again."""
        with self._cond:
            self._held = False
            self._cond.notify()

    def close(self) -> None:
        """Stop the worker and free every buffer it holds."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        self._spare = None
        self._done.clear()

    def _has_work(self) -> bool:
        if self._stopping:
            return True
        wants_spare = self._spare is None and self._lent == 0 and self.spare_size > 0
        # (zeroing or copying memory beside the decode thread's copy would slow both down)
        return not self._held and (bool(self._jobs or self._dropped) or wants_spare)

    def _copy(self, copy: Any, buffer: Any, used: int) -> None:
        """``used`` bytes from ``buffer`` to ``copy``, a chunk at a time, each once the decode thread lets go."""
        source, target = ctypes.addressof(buffer), ctypes.addressof(copy)
        for offset in range(0, used, COPY_CHUNK):
            with self._cond:
                self._cond.wait_for(lambda: not self._held or self._stopping)
            ctypes.memmove(target + offset, source + offset, min(COPY_CHUNK, used - offset))  # GIL released

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._stopping:
                    return
                dropped, self._dropped = self._dropped, []
                job = self._jobs.popleft() if self._jobs else None
                spare_size = self.spare_size if self._spare is None and not job else 0
            del dropped  # the last references: unmapped here, not in the decode thread
            try:
                if job is not None:
                    key, buffer, used = job
                    copy = allocate(used)
                    self._copy(copy, buffer, used)
                    with self._cond:
                        self._done.append((key, copy))
                elif spare_size:
                    spare = allocate(spare_size)
                    with self._cond:
                        if self._spare is None and spare_size >= self.spare_size:
                            self._spare = spare
            except (OSError, MemoryError, ValueError):
                logger.exception("could not make a host-memory buffer for the prompt cache")
                with self._cond:
                    self.spare_size = 0  # stop retrying: saves then allocate their own, or fail and are skipped
