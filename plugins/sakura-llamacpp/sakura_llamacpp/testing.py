"""Helpers for tests and benchmarks that drive an engine: run a generation and collect what it streamed."""

from __future__ import annotations

from dataclasses import dataclass, field

from sakura_core.engine import Engine
from sakura_core.types import Delta, SamplingParams


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


async def collect(engine: Engine, prompt: str, params: SamplingParams) -> Collected:
    """Run ``prompt`` to its end and return the deltas."""
    collected = Collected()
    async for delta in engine.generate(prompt, params):
        collected.deltas.append(delta)
    return collected
