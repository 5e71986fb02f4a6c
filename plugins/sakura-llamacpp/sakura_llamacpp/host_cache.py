"""The host-memory prompt cache: sequence states saved from the KV cache, restored into any slot later.

A slot about to drop a prefix that no other slot and no saved state holds saves its sequence here first
(``llama_state_seq_get_data``); a request whose prompt shares more with a saved state than with any slot gets it
back (``llama_state_seq_set_data``) instead of decoding it. The cache is bounded in bytes (``--cache-ram``, the
spare buffer of ``host_buffers`` included) and drops the least recently used state first. Used by the decode
thread only; its buffers are made and freed in ``host_buffers``' thread.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sakura_llamacpp.host_buffers import BufferSupply, allocate
from sakura_llamacpp.prefix import common_prefix_length

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(eq=False)
class SavedState:
    """One sequence's KV cells as llama.cpp serialised them, and the tokens they hold by position."""

    tokens: list[int]
    data: Any  # a ctypes byte array; its first ``used`` bytes are the state
    used: int
    on_spare: bool = False  # ``data`` is a spare buffer, until the buffer thread has made one of its own size

    @property
    def size(self) -> int:
        """The bytes of memory it holds (its buffer may be larger than the state until it is compacted)."""
        return len(self.data)


class HostPromptCache:
    """Saved sequence states, at most ``limit_bytes`` in all (None: no limit), least recently used out first."""

    def __init__(self, limit_bytes: int | None) -> None:
        self.limit_bytes = limit_bytes
        self._entries: collections.OrderedDict[int, SavedState] = collections.OrderedDict()  # oldest use first
        self._buffers = BufferSupply()
        self.bytes = 0
        self.saves = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Free every saved state and stop the buffer thread."""
        self._entries.clear()
        self.bytes = 0
        self._buffers.close()

    def longest(self, tokens: Sequence[int]) -> tuple[SavedState | None, int]:
        """The saved state sharing the longest prefix with ``tokens``, and that prefix's length."""
        best: SavedState | None = None
        best_shared = 0
        for entry in self._entries.values():
            shared = common_prefix_length(entry.tokens, tokens)
            if shared > best_shared:
                best, best_shared = entry, shared
        return best, best_shared

    def holds(self, tokens: Sequence[int]) -> bool:
        """True when a saved state starts with all of ``tokens`` (saving them again would add nothing)."""
        return any(common_prefix_length(entry.tokens, tokens) == len(tokens) for entry in self._entries.values())

    def _room(self) -> int | None:
        """Bytes the states may take: the limit less the spare buffer's."""
        return None if self.limit_bytes is None else self.limit_bytes - self._buffers.spare_size

    def expect(self, lib: ModuleType, context: Any, seq_id: int, cells: int, most_cells: int) -> None:
        """Have a spare buffer made before the first save, as large as a state of ``most_cells`` cells would be
        (estimated from sequence ``seq_id``, which holds ``cells``), so that no save waits for fresh memory."""
        if self._buffers.spare_size or cells <= 0:
            return
        size = int(lib.llama_state_seq_get_size(context, seq_id))  # counts the bytes, copies nothing
        estimate = size * most_cells // cells
        if self.limit_bytes is None or 2 * estimate <= self.limit_bytes:
            self._buffers.want(estimate)

    def save(self, lib: ModuleType, context: Any, seq_id: int, tokens: list[int]) -> bool:
        """Save sequence ``seq_id`` (holding ``tokens``); False when it does not fit or llama.cpp fails."""
        size = int(lib.llama_state_seq_get_size(context, seq_id))
        if size <= 0 or (self.limit_bytes is not None and 2 * size > self.limit_bytes):
            return False  # (the state and a spare as large could not both be kept)
        self._buffers.want(size)
        self._settle()
        room = self._room()
        self._drop_extended(tokens)
        buffer = self._buffers.take_spare(size)
        spare = buffer is not None
        taken = len(buffer) if buffer is not None else size  # what the state holds until it has its own buffer
        while room is not None and self._entries and self.bytes + taken > room:
            old = self._entries.pop(next(iter(self._entries)))
            self.bytes -= old.size
            self.evictions += 1
            if buffer is None and not old.on_spare and size <= old.size <= 2 * size:
                buffer, taken = old.data, old.size  # the evicted state's memory, reused: none mapped afresh here
            else:
                self._release(old)
        if buffer is None:  # none ready (saves in quick succession, the cache not yet full): one of its own size
            buffer = allocate(size)
        started = time.perf_counter()
        written = int(lib.llama_state_seq_get_data(context, buffer, size, seq_id))
        logger.debug(
            "saved %d tokens, %d bytes, in %.1f ms (%s)",
            len(tokens),
            written,
            1000 * (time.perf_counter() - started),
            "into the spare buffer" if spare else "into a new buffer",
        )
        if written <= 0:
            logger.warning("llama.cpp could not save sequence %d's state (%d tokens)", seq_id, len(tokens))
            self._buffers.give_back(buffer, lent=spare)
            return False
        entry = SavedState(list(tokens), buffer, written, on_spare=spare)
        self._entries[id(entry)] = entry
        self.bytes += entry.size
        self.saves += 1
        if spare:
            self._buffers.compact(entry, buffer, written)
        return True

    def restore(self, lib: ModuleType, context: Any, entry: SavedState, seq_id: int) -> bool:
        """Replace sequence ``seq_id``'s cells with ``entry``'s; False (the sequence then empty) when llama.cpp
        fails. Counts a hit and makes ``entry`` the most recently used."""
        read = int(lib.llama_state_seq_set_data(context, entry.data, entry.used, seq_id))
        if read <= 0:
            logger.warning("llama.cpp could not restore a saved state of %d tokens", len(entry.tokens))
            return False
        self.hits += 1
        self._entries.move_to_end(id(entry))
        return True

    def settle(self) -> None:
        """Put the right-sized copies made since the last call in place of the spare buffers, and hold the buffer
        thread off the memory until ``let_go`` (between decode steps, while states may be saved or restored)."""
        self._buffers.hold()
        self._settle()

    def let_go(self) -> None:
        """Let the buffer thread work (during a decode step)."""
        self._buffers.let_go()

    def _settle(self) -> None:
        for key, copy in self._buffers.finished():
            assert isinstance(key, SavedState)
            if self._entries.get(id(key)) is not key:  # evicted meanwhile: its spare comes back, the copy goes
                self._buffers.give_back(key.data)
                self._buffers.drop(copy)
                continue
            old = key.data
            key.data, key.on_spare = copy, False
            self.bytes += key.size - len(old)
            self._buffers.give_back(old)

    def _drop_extended(self, tokens: Sequence[int]) -> None:
        """Forget the states that ``tokens`` extend: the new one holds all they hold."""
        for key, old in list(self._entries.items()):
            if common_prefix_length(old.tokens, tokens) == len(old.tokens):
                self._remove(key)

    def _remove(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        self._release(entry)

    def _release(self, entry: SavedState) -> None:
        if not entry.on_spare:  # freed in the buffer thread (a spare, ``_settle`` gives back)
            self._buffers.drop(entry.data)
