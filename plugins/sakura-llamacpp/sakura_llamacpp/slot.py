"""One sequence of the batch and the request it serves, with an explicit state (as llama-server's ``server_slot``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sakura_llamacpp.text_stream import TextStream

if TYPE_CHECKING:
    from sakura_llamacpp.batch import SequenceRequest


class SlotState(enum.Enum):
    """Where a slot is in serving a request (llama-server's ``server_slot`` has the same states)."""

    IDLE = "idle"  # no request: its cells are the prompt cache
    PROMPT = "prompt"  # reading its request's prompt, a chunk a step
    GENERATING = "generating"  # the whole prompt is in: each step feeds back the token sampled last


@dataclass(eq=False)
class Slot:
    """One sequence of the batch: its KV cells, and the request it serves with that request's sampler and text.

    The state changes only through the methods below; callers ask ``state`` instead of inferring it.
    """

    seq_id: int
    state: SlotState = SlotState.IDLE
    request: SequenceRequest | None = None
    sampler: Any = None
    text: TextStream | None = None
    order: int = -1  # admission order of its latest request: prompt chunks go first-come, and the LRU slot is reused
    cells: list[int] = field(default_factory=list)  # the tokens whose KV cells the sequence holds, by position
    n_fed: int = 0  # prompt tokens already put in a batch (or taken from the cache)
    n_cached: int = 0  # prompt tokens of the current request that came from the cache
    last_token: int = -1  # the sampled token to feed next (valid once the prompt is in)
    generated: int = 0

    @property
    def busy(self) -> bool:
        """True while the slot serves a request (reading its prompt or generating)."""
        return self.state is not SlotState.IDLE

    @property
    def cancelled(self) -> bool:
        """True when the request it serves was cancelled (it is released at the next step)."""
        return self.request is not None and self.request.cancelled

    def start(self, request: SequenceRequest, order: int) -> None:
        """Take ``request``: the slot reads its prompt from the next step on."""
        assert self.state is SlotState.IDLE
        self.state = SlotState.PROMPT
        self.request = request
        self.order = order
        self.generated = 0
        self.last_token = -1
        self.n_fed = self.n_cached = 0

    def reuse_cached(self, count: int) -> None:
        """The first ``count`` prompt tokens are in the cells already: they are not fed again."""
        assert self.state is SlotState.PROMPT and count <= len(self.cells)
        self.n_fed = self.n_cached = count

    def take_shared(self, count: int) -> None:
        """``count`` more prompt tokens were put in the cells without decoding (shared from another sequence)."""
        assert self.state is SlotState.PROMPT and self.request is not None
        assert self.n_fed + count < len(self.request.tokens)  # the last prompt token is always decoded
        self.n_fed += count
        self.n_cached += count

    def prompt_left(self) -> list[int]:
        """The prompt tokens not yet put in a batch (empty once generating)."""
        if self.state is not SlotState.PROMPT:
            return []
        assert self.request is not None
        return self.request.tokens[self.n_fed :]

    def feed_prompt(self, count: int) -> None:
        """``count`` more prompt tokens went into this step's batch; with the last of them the slot generates."""
        assert self.state is SlotState.PROMPT and self.request is not None
        self.n_fed += count
        if self.n_fed == len(self.request.tokens):
            self.state = SlotState.GENERATING

    def sampled(self, token: int) -> None:
        """``token`` was generated and goes into the next step."""
        assert self.state is SlotState.GENERATING
        self.generated += 1
        self.last_token = token

    def release(self) -> tuple[SequenceRequest, Any]:
        """Back to idle; return the request it served and its sampler (the caller frees it)."""
        assert self.request is not None
        request, sampler = self.request, self.sampler
        self.state = SlotState.IDLE
        self.request = None
        self.sampler = None
        self.text = None
        return request, sampler
