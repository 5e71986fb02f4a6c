"""The host-memory prompt cache: sequence states saved from the KV cache, restored into any slot later.

A slot about to drop a prefix that no other slot and no saved state holds saves its sequence here first
(``llama_state_seq_get_data``); a request whose prompt shares more with a saved state than with any slot gets it
back (``llama_state_seq_set_data``) instead of decoding it. The cache is bounded in bytes (``--cache-ram``) and
drops the least recently used state first. Used by the decode thread only.
"""

from __future__ import annotations

import collections
import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sakura_llamacpp.prefix import common_prefix_length

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(eq=False)
class SavedState:
    """One sequence's KV cells as llama.cpp serialised them, and the tokens they hold by position."""

    tokens: list[int]
    data: Any  # a ctypes byte array, kept as it is (no second copy as bytes)

    @property
    def size(self) -> int:
        return len(self.data)


class HostPromptCache:
    """Saved sequence states, at most ``limit_bytes`` in all (None: no limit), least recently used out first."""

    def __init__(self, limit_bytes: int | None) -> None:
        self.limit_bytes = limit_bytes
        self._entries: collections.OrderedDict[int, SavedState] = collections.OrderedDict()  # oldest use first
        self.bytes = 0
        self.saves = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

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

    def fits(self, size: int) -> bool:
        """True when a state of ``size`` bytes can be kept at all."""
        return self.limit_bytes is None or size <= self.limit_bytes

    def add(self, entry: SavedState) -> None:
        """Keep ``entry``; drop the states it extends, then the least recently used until it fits."""
        if not self.fits(entry.size):
            return
        for key, old in list(self._entries.items()):
            if common_prefix_length(old.tokens, entry.tokens) == len(old.tokens):
                self._drop(key)
        while self.limit_bytes is not None and self.bytes + entry.size > self.limit_bytes:
            self._drop(next(iter(self._entries)))
            self.evictions += 1
        self._entries[id(entry)] = entry
        self.bytes += entry.size
        self.saves += 1

    def used(self, entry: SavedState) -> None:
        """``entry`` was restored: count a hit and make it the most recently used."""
        self.hits += 1
        self._entries.move_to_end(id(entry))

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size


def save_sequence(lib: ModuleType, context: Any, seq_id: int, tokens: list[int], cache: HostPromptCache) -> bool:
    """Save sequence ``seq_id`` (holding ``tokens``) into ``cache``; False when it does not fit or llama.cpp fails."""
    size = int(lib.llama_state_seq_get_size(context, seq_id))
    if size <= 0 or not cache.fits(size):
        return False
    data = (ctypes.c_uint8 * size)()
    written = int(lib.llama_state_seq_get_data(context, data, size, seq_id))
    if written <= 0:
        logger.warning("llama.cpp could not save sequence %d's state (%d tokens)", seq_id, len(tokens))
        return False
    if written < size:
        data = (ctypes.c_uint8 * written).from_buffer_copy(data)
    cache.add(SavedState(list(tokens), data))
    return True


def restore_sequence(lib: ModuleType, context: Any, entry: SavedState, seq_id: int) -> bool:
    """Replace sequence ``seq_id``'s cells with ``entry``'s; False (and the sequence empty) when llama.cpp fails."""
    read = int(lib.llama_state_seq_set_data(context, entry.data, entry.size, seq_id))
    if read <= 0:
        logger.warning("llama.cpp could not restore a saved state of %d tokens", len(entry.tokens))
        return False
    return True
