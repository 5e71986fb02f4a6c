"""Helpers for tests and benchmarks that drive an engine: run a generation and collect what it streamed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sakura_core.types import Delta, SamplingParams

if TYPE_CHECKING:
    from sakura_llamacpp.engine import LlamaCppEngine


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
