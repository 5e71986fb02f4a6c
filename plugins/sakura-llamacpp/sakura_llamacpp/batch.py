"""Continuous batching over llama.cpp: one worker thread decodes every running sequence in one ``llama_decode``.

Each sequence owns a slot: a sequence id with its own KV-cache region, its own sampler chain and its own text
stream. A new request joins at the next step (its prompt is fed in chunks that share the step's token budget with
the sequences already generating; on the CPU a step reads one prompt after another, not several at once). Deltas
go back to the asyncio side with one ``loop.call_soon_threadsafe`` per loop and step, so the event loop never waits
on llama.cpp.

Prompt cache: a slot whose request ended keeps its KV cells and the list of tokens they hold. A new request goes to
the free slot whose tokens share the longest prefix with its prompt (when that prefix is a large enough part of the
prompt; else to a slot next to the busy ones, the least recently used of those), whose cells from the first
difference on are dropped (saved first to the host-memory cache, ``host_cache.py``, unless another slot or a saved
state holds them). Before each step, a slot reading its prompt takes the longest further prefix that any other
slot's cells hold, busy or idle, with ``llama_memory_seq_cp``: with a KV region per sequence llama.cpp copies the
other's region at the next step (and the slot keeps the shared part), with the unified KV cache the cells become
both sequences' without a copy. A saved state that shares more than every slot is restored into the slot instead.
A prompt that an earlier one is still reading waits for it (a step at a time) instead of decoding the same tokens.
Only the rest of the prompt is decoded. The token list is extended only after a successful ``llama_decode``, so it
never claims cells that were not written: a cancelled request leaves exactly the prefix it decoded, a failed step
leaves nothing.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import statistics
import threading
import time
import weakref
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sakura_core.engine import EngineError
from sakura_core.types import Delta, FinishReason, SamplingParams, SlotCache
from sakura_llamacpp.cache_stats import PromptCacheStats
from sakura_llamacpp.host_cache import HostPromptCache
from sakura_llamacpp.native import Tokenizer
from sakura_llamacpp.prefix import common_prefix_length
from sakura_llamacpp.sampling import build_sampler, has_penalties
from sakura_llamacpp.slot import Slot, SlotState
from sakura_llamacpp.text_stream import TextStream

logger = logging.getLogger(__name__)

_RELEASED = object()  # marker: the worker has freed the sequence

#: Fewest tokens worth saving to the host cache, and the fewest more than the slots hold worth restoring from it
#: (a restore copies the whole saved state; a few tokens decode as fast).
HOST_CACHE_MIN_TOKENS = 32
#: A slot saves its cells to the host cache before dropping some only when the new prompt keeps less than this
#: share of them. A prompt that keeps most of the slot (the same system prompt and glossary, another passage) drops
#: only the last passage, which is rarely asked for again, while a save copies the whole sequence's state.
HOST_CACHE_SAVE_BELOW_KEPT = 0.5
#: A prompt waits a step for an earlier one that is reading the same prefix (then takes its cells) when it would
#: otherwise decode at least this many of the same tokens itself.
WAIT_FOR_SHARED_TOKENS = 32
#: With a KV region per sequence, sharing copies a whole region (still far cheaper than decoding): fewer tokens are
#: decoded instead.
MIN_SHARED_TOKENS = 32


@dataclass(eq=False)
class SequenceRequest:
    """One generation handed to the worker, with the asyncio objects its results go to."""

    tokens: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Delta | BaseException] = field(default_factory=asyncio.Queue)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False


def id_runs(ids: set[int]) -> int:
    """How many runs of consecutive numbers ``ids`` make ({0, 1, 3}: 2)."""
    return sum(1 for i in ids if i - 1 not in ids)


class _Mailbox:
    """Results on their way to one event loop.

    The worker posts; the loop is woken with ``call_soon_threadsafe`` only when it has no wake-up pending, so a
    busy loop takes several steps' results in one go instead of being woken (and taking the GIL) once per token.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[SequenceRequest, object]] = []
        self._wake_pending = False
        self._posted = 0  # posts so far
        self._handled = 0  # posts whose woken tasks have run
        self._handled_changed = threading.Condition(self._lock)

    def post(self, items: list[tuple[SequenceRequest, object]]) -> int:
        """Queue ``items`` for the loop; return this post's number (for ``wait_handled``)."""
        with self._lock:
            self._items.extend(items)
            self._posted += 1
            number = self._posted
            if self._wake_pending:
                return number
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.debug("dropped %d results for a closed event loop", len(items))
            with self._lock:
                self._handled = self._posted
        return number

    def wait_handled(self, number: int, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until the tasks woken by post ``number`` have run."""
        with self._lock:
            self._handled_changed.wait_for(lambda: self._handled >= number, timeout)

    def _drain(self) -> None:  # on the loop
        with self._lock:
            items, self._items = self._items, []
            upto = self._posted
            self._wake_pending = False
        for request, item in items:
            if item is _RELEASED:
                request.released.set()
            else:
                request.queue.put_nowait(item)  # type: ignore[arg-type]
        # the tasks woken above run their steps (down to the HTTP write) before this callback
        self._loop.call_soon(self._mark_handled, upto)

    def _mark_handled(self, upto: int) -> None:  # on the loop
        with self._lock:
            self._handled = max(self._handled, upto)
            self._handled_changed.notify_all()


class _Outbox:
    """Results gathered during one step, posted to each loop's mailbox at the end of the step."""

    def __init__(self) -> None:
        self._mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = weakref.WeakKeyDictionary()
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[SequenceRequest, object]]] = {}

    def put(self, request: SequenceRequest, item: object) -> None:
        self._items.setdefault(request.loop, []).append((request, item))

    def flush(self) -> list[tuple[_Mailbox, int]]:
        """Post what was gathered; return the posts made, to wait on with ``_Mailbox.wait_handled``."""
        items, self._items = self._items, {}
        posts = []
        for loop, batch in items.items():
            mailbox = self._mailboxes.get(loop)
            if mailbox is None:
                mailbox = self._mailboxes[loop] = _Mailbox(loop)
            posts.append((mailbox, mailbox.post(batch)))
        return posts


class BatchDecoder:
    """The decode loop of one llama.cpp context serving ``n_parallel`` sequences."""

    def __init__(
        self,
        lib: ModuleType,
        context: Any,
        tokenizer: Tokenizer,
        *,
        n_parallel: int,
        n_ctx_per_seq: int,
        n_batch: int,
        repeat_last_n: int,
        cache_prompt: bool = True,
        share_slots: bool = True,
        unified_kv: bool = False,
        host_cache: HostPromptCache | None = None,
        slot_prompt_similarity: float = 0.1,
        handoff_seconds: float = 0.0,
        pack_prompts_within: int | None = None,
    ) -> None:
        self._lib = lib
        self._context = context
        self._memory = lib.llama_get_memory(context)
        self._tokenizer = tokenizer
        self.n_ctx_per_seq = n_ctx_per_seq
        self._n_batch = n_batch
        # a step that reads a prompt takes a later prompt's tokens only while it carries fewer tokens than this
        self._pack_within = n_batch if pack_prompts_within is None else min(pack_prompts_within, n_batch)
        self._repeat_last_n = repeat_last_n
        self._cache_prompt = cache_prompt
        self._share_slots = cache_prompt and share_slots
        # one KV cache for all sequences: sharing cells costs nothing; else a region per sequence, copied whole
        self._unified_kv = unified_kv
        self._copy_pending = False  # a copy between regions waits for the next llama_decode
        self._host_cache = host_cache if cache_prompt else None
        self._similarity = slot_prompt_similarity
        self._handoff_seconds = handoff_seconds
        self._slots = [Slot(seq_id) for seq_id in range(n_parallel)]
        self._pending: collections.deque[SequenceRequest] = collections.deque()
        self._held = 0  # requests pending or in a slot, not yet released
        self._cond = threading.Condition()
        self._stopping = False
        self._order = itertools.count()
        self._outbox = _Outbox()
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._thread = threading.Thread(target=self._run, name="sakura-llamacpp-decode", daemon=True)
        #: decode steps run, the sequences they carried and the seconds spent inside llama_decode (for benchmarks
        #: and metrics: that time over the wall time is how busy the engine kept llama.cpp)
        self.decode_steps = 0
        self.decoded_sequences = 0
        self.decode_seconds = 0.0
        # where prompt tokens came from, and how long the decode thread spent on host-cache transfers
        self._tokens_decoded = self._tokens_kept = self._tokens_shared = self._tokens_restored = 0
        self._longest_transfer = 0.0
        self._step_seconds: collections.deque[float] = collections.deque(maxlen=256)

    # -- the asyncio side ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    @property
    def active(self) -> int:
        """Generations submitted and not yet released by the worker."""
        return self._held

    def slot_caches(self) -> list[SlotCache]:
        """Per slot: the tokens its KV cells hold, and how many of its latest prompt came from them.

        Read without a lock while the worker runs: each figure is current as of some recent step.
        """
        return [SlotCache(len(slot.cells), slot.n_cached) for slot in self._slots]

    def cache_stats(self) -> PromptCacheStats:
        """The prompt cache's counters (read without a lock: each current as of some recent step)."""
        host = self._host_cache
        steps = list(self._step_seconds)
        return PromptCacheStats(
            prompt_tokens_decoded=self._tokens_decoded,
            prompt_tokens_kept=self._tokens_kept,
            prompt_tokens_shared=self._tokens_shared,
            prompt_tokens_restored=self._tokens_restored,
            host_cache_bytes=host.bytes if host else 0,
            host_cache_limit_bytes=host.limit_bytes if host else 0,
            host_cache_entries=len(host) if host else 0,
            host_cache_saves=host.saves if host else 0,
            host_cache_hits=host.hits if host else 0,
            host_cache_evictions=host.evictions if host else 0,
            longest_transfer_seconds=self._longest_transfer,
            median_step_seconds=statistics.median(steps) if steps else 0.0,
        )

    def submit(self, request: SequenceRequest) -> None:
        """Queue ``request``; it joins the running batch at the next step with a free slot."""
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise EngineError("the llama.cpp engine is closed")
            self._pending.append(request)
            self._held += 1
            self._cond.notify()

    def cancel(self, request: SequenceRequest) -> bool:
        """Ask the worker to drop ``request`` at its next step. False when no worker will acknowledge it."""
        with self._cond:
            request.cancelled = True
            self._cond.notify()
            return self._thread.is_alive()

    def close(self) -> None:
        """Stop the worker (failing what is still running) and free the batch. The context stays the caller's."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self._host_cache is not None:
            self._host_cache.close()

    # -- the worker thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._next_round():
                try:
                    self._step()
                except Exception as exc:  # a failed step fails its sequences; the engine keeps serving
                    logger.exception("llama.cpp decode step failed")
                    for slot in self._busy_slots():
                        self._fail(slot, EngineError(f"llama.cpp decode failed: {exc}"))
                posts = self._outbox.flush()
                if self._handoff_seconds > 0:
                    self._wait_for_loops(posts)
        finally:
            self._shut_down()

    def _wait_for_loops(self, posts: list[tuple[_Mailbox, int]]) -> None:
        """Let the event loops send what this step produced before the next decode takes every CPU.

        Used when llama.cpp's threads fill every CPU: the HTTP work would otherwise run during the next decode
        and stall its threads. Never waits longer than ``handoff_seconds`` in all.
        """
        deadline = time.monotonic() + self._handoff_seconds
        for mailbox, number in posts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            mailbox.wait_handled(number, remaining)

    def _busy_slots(self) -> list[Slot]:
        return [slot for slot in self._slots if slot.busy]

    def _next_round(self) -> bool:
        """Wait for work; drop cancelled sequences and admit pending ones. False when the decoder stops."""
        with self._cond:
            while not self._stopping and not self._pending and not self._busy_slots():
                self._cond.wait()
            if self._stopping:
                return False
            kept: collections.deque[SequenceRequest] = collections.deque()
            for request in self._pending:
                if request.cancelled:
                    self._held -= 1
                    self._outbox.put(request, _RELEASED)
                else:
                    kept.append(request)
            self._pending = kept
        for slot in self._busy_slots():
            if slot.cancelled:
                self._release(slot, keep_cells=True)  # its cells hold exactly the tokens it decoded
        if self._host_cache is not None:
            self._host_cache.settle()  # buffers made in the meantime take the place of the spare ones
        free = [slot for slot in self._slots if not slot.busy]
        with self._cond:
            arrivals = [self._pending.popleft() for _ in range(min(len(free), len(self._pending)))]
        for request in arrivals:  # first come, first served: each takes the free slot that suits it best
            slot = self._choose_slot(free, request.tokens)
            free.remove(slot)
            slot.start(request, next(self._order))
            try:
                self._admit(slot)
            except Exception as exc:  # e.g. a sampler llama.cpp refuses: fail this request, serve the others
                logger.exception("could not start a sequence")
                self._fail(slot, EngineError(f"llama.cpp could not start the sequence: {exc}"))
        return True

    def _choose_slot(self, free: list[Slot], tokens: list[int]) -> Slot:
        """The free slot whose cells share the longest prefix with ``tokens``, if that prefix is more than
        ``slot_prompt_similarity`` of the prompt (as llama-server chooses). Else one that keeps the busy slots'
        ids in as few runs as possible (each run costs llama.cpp a pass over the weights per step), the least
        recently used of those."""
        if self._cache_prompt and self._similarity > 0:
            best, best_shared = free[0], 0
            for slot in free:
                shared = common_prefix_length(slot.cells, tokens)
                if shared > best_shared:
                    best, best_shared = slot, shared
            if best_shared > self._similarity * len(tokens):
                return best
        busy = {slot.seq_id for slot in self._slots if slot.busy}
        return min(free, key=lambda slot: (id_runs(busy | {slot.seq_id}), slot.order))

    def _keep_prefix(self, slot: Slot, keep: int) -> int:
        """Drop the slot's cells from position ``keep`` on; return how many it keeps (0 where llama.cpp cannot
        cut the sequence there, or lost its start, as a sliding-window cache does)."""
        lib, memory = self._lib, self._memory
        if keep > 0 and lib.llama_memory_seq_rm(memory, slot.seq_id, keep, -1):
            if lib.llama_memory_seq_pos_min(memory, slot.seq_id) == 0:
                del slot.cells[keep:]
                return keep
        lib.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
        slot.cells.clear()
        return 0

    def _admit(self, slot: Slot) -> None:
        request = slot.request
        assert request is not None
        tokens = request.tokens
        limit = len(tokens) - 1  # the last prompt token is always decoded again: its logits give the first output
        reusable = common_prefix_length(slot.cells, tokens) if self._cache_prompt else 0
        if reusable < HOST_CACHE_SAVE_BELOW_KEPT * len(slot.cells):
            self._save_to_host(slot)  # before its cells from the first difference on are dropped
        kept = self._keep_prefix(slot, min(reusable, limit))
        restored = self._restore_from_host(slot, tokens, kept)
        if restored:
            self._tokens_restored += restored
        else:
            self._tokens_kept += kept
        slot.reuse_cached(restored or kept)
        params = request.params
        last_n = self.n_ctx_per_seq if self._repeat_last_n < 0 else self._repeat_last_n
        slot.sampler = build_sampler(self._lib, params, n_vocab=self._tokenizer.n_vocab, repeat_last_n=last_n)
        if has_penalties(params) and last_n > 0:  # the penalties look at the prompt too, as in llama-server
            for token in request.tokens[-last_n:]:
                self._lib.llama_sampler_accept(slot.sampler, token)
        slot.text = TextStream(params.stop)

    def _others(self, slot: Slot) -> list[Slot]:
        return [other for other in self._slots if other is not slot]

    def _save_to_host(self, slot: Slot) -> None:
        """Save the slot's cells to the host cache unless another slot or a saved state holds them all."""
        host, cells = self._host_cache, slot.cells
        if host is None or self._copy_pending or len(cells) < HOST_CACHE_MIN_TOKENS or host.holds(cells):
            return  # (a pending copy between regions may still be about to write these cells)
        if any(common_prefix_length(other.cells, cells) == len(cells) for other in self._others(slot)):
            return
        started = time.perf_counter()
        saved = host.save(self._lib, self._context, slot.seq_id, cells)
        self._note_transfer(started)
        if saved:
            logger.debug(
                "saved slot %d's %d tokens to the host cache (%d MiB in all)", slot.seq_id, len(cells), host.bytes >> 20
            )

    def _restore_from_host(self, slot: Slot, tokens: list[int], kept: int) -> int:
        """Restore the saved state that shares the most with ``tokens`` into the slot, when it shares enough more
        than the slot keeps and than any other slot holds; return the prompt tokens it gives (0: none restored)."""
        host = self._host_cache
        if host is None or self._copy_pending:  # a pending copy could overwrite what is restored
            return 0
        entry, shared = host.longest(tokens)
        shared = min(shared, len(tokens) - 1)
        if entry is None or shared < kept + HOST_CACHE_MIN_TOKENS:
            return 0
        if self._share_slots and any(
            common_prefix_length(other.cells, tokens) + HOST_CACHE_MIN_TOKENS > shared for other in self._others(slot)
        ):
            return 0  # another slot's cells give (almost) as much, without a copy
        started = time.perf_counter()
        self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.cells.clear()
        restored = host.restore(self._lib, self._context, entry, slot.seq_id)
        self._note_transfer(started)
        if not restored:
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            return 0
        slot.cells.extend(entry.tokens)
        return self._keep_prefix(slot, shared)

    def _note_transfer(self, started: float) -> None:
        self._longest_transfer = max(self._longest_transfer, time.perf_counter() - started)

    def _share_or_wait(self, slot: Slot) -> bool:
        """Take into a slot reading its prompt the longest further prefix of it that another slot's cells hold,
        busy or idle; return True when it should rather wait this step, because a slot admitted earlier is still
        reading enough more of its prompt to take later instead of decoding the same tokens twice."""
        request = slot.request
        assert request is not None
        tokens, have = request.tokens, len(slot.cells)
        limit = len(tokens) - 1
        best, source = have, None
        for other in self._others(slot):
            if len(other.cells) > best:
                shared = min(common_prefix_length(other.cells, tokens), limit)
                if shared > best:
                    best, source = shared, other
        ahead = max(
            (
                min(common_prefix_length(other.request.tokens, tokens), limit)
                for other in self._others(slot)
                if other.state is SlotState.PROMPT and other.order < slot.order and other.request is not None
            ),
            default=0,
        )
        waits = ahead - best >= WAIT_FOR_SHARED_TOKENS
        if source is not None and (self._unified_kv or (not waits and best - have >= MIN_SHARED_TOKENS)):
            self._share(source, slot, best)
        return waits

    def _share(self, source: Slot, slot: Slot, upto: int) -> None:
        """Give ``slot`` the cells of ``source``'s first ``upto`` positions (its own are a prefix of them)."""
        have = len(slot.cells)
        lib, memory = self._lib, self._memory
        if self._unified_kv:  # the cells become the sequences' both: nothing decoded, nothing copied
            lib.llama_memory_seq_cp(memory, source.seq_id, slot.seq_id, have, upto)
        else:  # llama.cpp copies the source's whole region at the next decode; the slot keeps its prefix of it
            lib.llama_memory_seq_cp(memory, source.seq_id, slot.seq_id, -1, -1)
            lib.llama_memory_seq_rm(memory, slot.seq_id, upto, -1)
            self._copy_pending = True
        slot.cells.extend(source.cells[have:upto])
        slot.take_shared(upto - have)
        self._tokens_shared += upto - have

    def _step(self) -> None:
        """Build one batch, decode it, sample, emit.

        Every generating sequence puts in its next token; the earliest admitted prompt takes the rest of
        ``n_batch``, later prompts only what keeps the step within ``pack_prompts_within`` tokens (on the CPU, where
        every token of a step costs its time, their tokens would delay the earlier prompt's first token without
        bringing their own any closer: prompts arriving together finish one step after another).

        The batch lists the sequences by id: with a KV region per sequence, llama.cpp computes a run of consecutive
        sequence ids in one pass over the weights (a token each) and needs another pass for every break in that
        order.
        """
        if self._host_cache is not None:
            self._host_cache.let_go()  # saves and restores are done: its buffer thread works while llama.cpp decodes
        batch = self._batch
        busy = self._busy_slots()  # by sequence id
        feeds: dict[Slot, tuple[list[int], bool]] = {}  # the tokens each sequence puts in; True: it generates
        budget = self._n_batch
        for slot in busy:
            if slot.state is SlotState.GENERATING:
                feeds[slot] = ([slot.last_token], True)
                budget -= 1
        prefilling = sorted((s for s in busy if s.state is SlotState.PROMPT), key=lambda s: s.order)
        first_prompt = True
        for slot in prefilling:
            if self._share_slots and self._share_or_wait(slot):
                continue
            # the earliest prompt takes what the step has room for, a later one at most up to ``pack_within``
            room = budget if first_prompt else min(budget, self._pack_within - (self._n_batch - budget))
            if room <= 0:
                continue
            chunk = slot.prompt_left()[:room]
            feeds[slot] = (chunk, False)
            budget -= len(chunk)
            first_prompt = False
        n = 0
        outputs: list[tuple[Slot, int]] = []
        carried: list[tuple[Slot, list[int]]] = []  # each sequence in the batch, and the tokens it put there
        for slot in busy:
            if slot not in feeds:
                continue
            fed, generating = feeds[slot]
            start = len(slot.cells)
            for offset, token in enumerate(fed):
                self._put(batch, n + offset, token, start + offset, slot.seq_id, False)
            n += len(fed)
            carried.append((slot, fed))
            if not generating:
                slot.feed_prompt(len(fed))
                self._tokens_decoded += len(fed)
            if slot.state is SlotState.GENERATING:  # its last token's logits give the next one
                batch.logits[n - 1] = 1
                outputs.append((slot, n - 1))
        if n == 0:
            return
        batch.n_tokens = n
        started = time.perf_counter()
        status = self._lib.llama_decode(self._context, batch)
        elapsed = time.perf_counter() - started
        self._step_seconds.append(elapsed)
        self.decode_seconds += elapsed
        if status != -1:  # past checking the batch, llama.cpp updated the cache (copies between regions first)
            self._copy_pending = False
        if status != 0:
            reason = "no room in the KV cache" if status == 1 else f"status {status}"
            for slot, _ in carried:
                self._fail(slot, EngineError(f"llama.cpp decode failed ({reason})"))
            return
        self.decode_steps += 1
        self.decoded_sequences += len(carried)
        for slot, fed in carried:  # only now are their cells written
            slot.cells += fed
        for slot, index in outputs:
            self._sample(slot, index)

    @staticmethod
    def _put(batch: Any, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = logits

    def _sample(self, slot: Slot, index: int) -> None:
        request, text_stream = slot.request, slot.text
        assert request is not None and text_stream is not None
        token = int(self._lib.llama_sampler_sample(slot.sampler, self._context, index))
        prompt_tokens = len(request.tokens)
        if self._tokenizer.is_end(token):  # the end-of-sequence token ends the output and is not counted
            self._finish(slot, text_stream.finish(), "stop")
            return
        slot.sampled(token)
        text = text_stream.feed(self._tokenizer.piece(token))
        if text_stream.stopped:
            self._finish(slot, text, "stop")
        elif slot.generated >= request.params.max_tokens or len(slot.cells) >= self.n_ctx_per_seq:
            self._finish(slot, text + text_stream.finish(), "length")
        else:
            self._outbox.put(request, Delta(text, prompt_tokens, slot.generated, None, slot.n_cached))

    def _finish(self, slot: Slot, text: str, reason: FinishReason) -> None:
        request = slot.request
        assert request is not None
        delta = Delta(text, len(request.tokens), slot.generated, reason, slot.n_cached)
        self._release(slot, keep_cells=True)  # the slot is free before the client hears the end
        self._outbox.put(request, delta)

    def _fail(self, slot: Slot, error: BaseException) -> None:
        if not slot.busy:
            return
        request = slot.request
        assert request is not None
        self._release(slot, keep_cells=False)  # a failed decode may have written cells the token list lacks
        self._outbox.put(request, error)

    def _release(self, slot: Slot, *, keep_cells: bool) -> None:
        """Free the slot for the next request; its cells stay as the prompt cache when ``keep_cells``."""
        if not slot.busy:
            return
        if not (keep_cells and self._cache_prompt):
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            slot.cells.clear()
        if self._host_cache is not None and slot.cells:  # the first time, the spare buffer for saves gets made
            self._host_cache.expect(self._lib, self._context, slot.seq_id, len(slot.cells), self.n_ctx_per_seq)
        request, sampler = slot.release()
        if sampler is not None:
            self._lib.llama_sampler_free(sampler)
        with self._cond:
            self._held -= 1
        self._outbox.put(request, _RELEASED)

    def _shut_down(self) -> None:
        closed = EngineError("the llama.cpp engine is closed")
        for slot in self._busy_slots():
            self._fail(slot, closed)
        with self._cond:
            self._stopping = True
            pending, self._pending = list(self._pending), collections.deque()
            self._held -= len(pending)
        for request in pending:
            self._outbox.put(request, closed)
            self._outbox.put(request, _RELEASED)
        self._outbox.flush()
