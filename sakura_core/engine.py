"""The engine contract: what a backend (llama.cpp, vLLM, Ollama, yours) implements to serve Sakura models.

An engine knows how to load a model, count tokens and stream tokens. Everything that is the same for every engine
lives in the core (``sakura_core.engine_runner``): counting running generations, the finish rules (``"length"``
exactly at ``max_tokens``, stop strings never emitted), filling in token counts, running blocking token counts off
the event loop, and polling the engine's health.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from sakura_core.types import Delta, EngineMetric, ModelInfo, SamplingParams, SlotCache


class EngineError(RuntimeError):
    """An engine failed while serving; the server answers 500 with this message and keeps serving."""


class EngineUnavailableError(EngineError):
    """The engine's backend cannot serve right now (a server that stopped, a lost connection, a device reset).

    The server answers 503 with this message and ``Retry-After``, and streams end with an error event carrying
    the code ``engine_unavailable``: clients retry later.
    """


class ModelLoadError(EngineError):
    """The model could not be loaded. The message is one line that says what to do.

    ``sakura run`` prints it as ``Error: <message>``, its last line (exit code 1); before it, only a load that took
    over a second has printed one ``loading …`` line.
    """


class EngineOptions(BaseModel):
    """Base class of an engine's own options.

    Every field becomes a ``sakura run`` option under the engine's heading: ``n_gpu_layers`` becomes
    ``--n-gpu-layers`` (with ``--n_gpu_layers`` as an alias), a ``bool`` field becomes a ``--x/--no-x`` flag,
    the field's ``description`` is the help text and its default is shown; a field without a default
    (``Field(...)``) is a required option. More spellings can be added with
    ``Field(json_schema_extra={"aliases": ["-np", "--parallel"]})``.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Engine(abc.ABC):
    """A backend that loads one model and streams generations from it.

    Subclasses set the class attributes and implement the three abstract methods (``load``, ``count_tokens``,
    ``generate``), and are registered by a plugin's ``register_engines`` hook. The plugin module must not import
    the backend library at import time: import it inside ``load`` so that ``sakura --help`` stays fast and works
    where the library is missing.

    Lifecycle: ``Engine(options)`` → ``await load(model)`` → any number of concurrent ``generate`` streams →
    ``await close()``.
    """

    #: Engine name used with ``sakura run --engine NAME``.
    name: ClassVar[str]
    #: One line shown by ``sakura engines``.
    description: ClassVar[str] = ""
    #: The engine's options model (a subclass of EngineOptions).
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    #: True when ``generate`` itself ends on ``params.stop`` and never emits a stop string (llama.cpp, vLLM); the
    #: core then skips its own stop-string filter. Leave it False and the core does the matching.
    handles_stop_strings: ClassVar[bool] = False

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.model_info: ModelInfo | None = None

    @abc.abstractmethod
    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        """Load ``model`` (a path or a tag) and return its identity (also kept as ``self.model_info``).

        ``model_version``, when given, overrides the version the engine would read from the model.
        Raise ``ModelLoadError`` with a one-line, actionable message when loading is impossible.
        """

    @property
    def parallelism(self) -> int:
        """How many sequences the engine decodes together; the server admits this many at once. Default 1."""
        return 1

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int | Awaitable[int]:
        """The number of tokens ``text`` is as a prompt (special tokens in it parsed as such).

        Either a plain method or an ``async def``. The core never calls a plain one on the event loop: it runs in
        a worker thread (so it must be safe to call from one, beside running generations); write it as a
        coroutine when counting waits on I/O (a remote tokenizer, an HTTP call). Raise ``EngineError`` (or
        ``EngineUnavailableError``) when the text cannot be counted: the client gets a 500 (503) with its message.
        """

    @abc.abstractmethod
    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta | str]:
        """Stream the continuation of a raw ``prompt``. Implement as an async generator.

        Yield each generated token's text as a ``str`` (one token each), or ``Delta`` objects when one piece of
        text is several tokens (``completion_tokens`` counts the tokens generated so far; ``prompt_tokens`` may
        be left 0). Yield nothing for the end-of-sequence token: stop iterating. The core does the rest: it stops
        the stream at ``params.max_tokens`` tokens (finish ``"length"``), ends on ``params.stop`` strings without
        emitting them (unless ``handles_stop_strings``), and sets the finish reason (``"stop"`` otherwise).

        Cancellation: the core stops by calling ``aclose()`` on the generator or by cancelling the task that
        iterates it. Either way the engine must free the sequence's resources promptly (use ``try/finally``).
        """

    @property
    def active_generations(self) -> int:
        """Generations the engine itself still holds resources for (a sequence, a request upstream).

        Optional: the core counts the generations it runs on its own and never reads this. Report the engine's
        internal count here so that the conformance kit can check that a stopped generation frees what it held.
        Default 0, which means "nothing reported": the kit passes an engine that reports 0 throughout.
        """
        return 0

    async def health(self) -> str | None:
        """Whether the backend can serve: None when it can, else one line saying why not.

        Optional. When implemented, the server polls it about once a second; ``/health`` answers 503 with the
        reason while it is not None, generation requests get 503, and the log says so once per change. Must be
        quick (a cheap request with a short timeout) and must not raise.
        """
        return None

    async def recover(self, reason: str) -> None:
        """The server's watchdog found a generation with no progress for ``--stall-timeout`` seconds (``reason``
        says which): restart what can be restarted (a backend process the engine spawned). Optional; the default
        does nothing. ``/health`` answers 503 until the stalled generation ends or moves again.
        """
        return None

    def slot_caches(self) -> list[SlotCache] | None:
        """Per slot (engine sequence), what its prompt cache holds; None when the engine keeps no such cache.

        Engines that reuse a cached prompt prefix override this (``/slots`` shows it as ``tokens_cached``) and
        report ``Delta.cached_tokens``. Called from the event loop: it must be quick and must not block.
        """
        return None

    def metrics(self) -> Sequence[EngineMetric]:
        """Figures only the engine knows, for ``/metrics`` (as ``sakura_engine_<name>``): a prompt cache's hits
        and memory, say. Optional; default none. Called from the event loop: it must be quick and must not block.
        """
        return ()

    async def close(self) -> None:  # noqa: B027 - optional to override
        """Release the model and every resource. Called once, at shutdown."""
