"""Helpers for tests and benchmarks that drive an engine: run a generation and collect what it streamed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sakura_core.types import Delta, SamplingParams

if TYPE_CHECKING:
    from sakura_llamacpp.batch import BatchDecoder
    from sakura_llamacpp.engine import LlamaCppEngine

#: The tests' ``open_engine`` fixture: ``await open_engine(model=..., **options)`` gives a loaded engine.
OpenEngine = Callable[..., Awaitable["LlamaCppEngine"]]


@dataclass
class Collected:
    """Everything one generation streamed."""

    deltas: list[Delta] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The deltas' texts joined."""
        return "".join(d.text for d in self.deltas)

    @property
    def last(self) -> Delta:
        """The final delta."""
        return self.deltas[-1]


async def collect(engine: LlamaCppEngine, prompt: str, params: SamplingParams) -> Collected:
    """Run ``prompt`` to its end and return the deltas (this engine's stream: deltas only, with their counts)."""
    collected = Collected()
    async for delta in engine.generate(prompt, params):
        collected.deltas.append(delta)
    return collected


def decoder_of(engine: LlamaCppEngine) -> BatchDecoder:
    """The engine's decode loop (to look at its slots)."""
    from sakura_llamacpp.batch import BatchDecoder

    decoder: Any = engine._decoder
    assert isinstance(decoder, BatchDecoder)
    return decoder


def cells_of(engine: LlamaCppEngine, slot: int = 0) -> list[int]:
    """The tokens the engine says slot ``slot`` holds, checked against the positions llama.cpp's KV cache holds."""
    decoder = decoder_of(engine)
    cells = list(decoder._slots[slot].cells)
    lib, memory = decoder._lib, decoder._memory
    assert lib.llama_memory_seq_pos_max(memory, slot) == len(cells) - 1  # llama.cpp holds exactly these positions
    assert lib.llama_memory_seq_pos_min(memory, slot) == (0 if cells else -1)
    return cells
