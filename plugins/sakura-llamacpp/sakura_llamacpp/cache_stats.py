"""What the prompt cache saved, for ``/metrics`` and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptCacheStats:
    """Counters since the engine loaded; prompt tokens are counted once each, by where their cells came from."""

    prompt_tokens_decoded: int  # put through llama_decode
    prompt_tokens_kept: int  # already in the slot's own cells
    prompt_tokens_shared: int  # taken from another slot's cells (llama_memory_seq_cp: no copy, no decode)
    prompt_tokens_restored: int  # restored from the host-memory cache
    host_cache_bytes: int
    host_cache_limit_bytes: int | None  # None: no limit; 0 with the host cache off
    host_cache_entries: int
    host_cache_saves: int
    host_cache_hits: int
    host_cache_evictions: int
    longest_transfer_seconds: float  # the longest save or restore: the decode thread waits for it
    median_step_seconds: float  # of the recent decode steps (0.0 before the first)

    @property
    def prompt_tokens_reused(self) -> int:
        """Prompt tokens that were not decoded: kept, shared or restored."""
        return self.prompt_tokens_kept + self.prompt_tokens_shared + self.prompt_tokens_restored
