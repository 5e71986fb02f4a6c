"""The engine contract: what a backend (llama.cpp, vLLM, Ollama, yours) implements to serve Sakura models."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from sakura_core.types import Delta, ModelInfo, SamplingParams, SlotCache


class EngineError(RuntimeError):
    """An engine failed while serving; the server answers 500/503 with this message and keeps serving."""


class ModelLoadError(EngineError):
    """The model could not be loaded. The message is one line that says what to do; the CLI prints it as is."""


class EngineOptions(BaseModel):
    """Base class of an engine's own options.

    Every field becomes a ``sakura run`` option under the engine's heading: ``n_gpu_layers`` becomes
    ``--n-gpu-layers`` (with ``--n_gpu_layers`` as an alias), a ``bool`` field becomes a ``--x/--no-x`` flag,
    the field's ``description`` is the help text and its default is shown. More spellings can be added with
    ``Field(json_schema_extra={"aliases": ["-np", "--parallel"]})``.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Engine(abc.ABC):
    """A backend that loads one model and streams generations from it.

    Subclasses set the class attributes, implement the abstract methods, and are registered by a plugin's
    ``register_engines`` hook. The plugin module must not import the backend library at import time: import it
    inside ``load`` so that ``sakura --help`` stays fast and works where the library is missing.

    Lifecycle: ``Engine(options)`` → ``await load(model)`` → any number of concurrent ``generate`` streams →
    ``await close()``.
    """

    #: Engine name used with ``sakura run --engine NAME``.
    name: ClassVar[str]
    #: One line shown by ``sakura engines``.
    description: ClassVar[str] = ""
    #: The engine's options model (a subclass of EngineOptions).
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    #: What a user runs to install this engine, shown when it is asked for but missing.
    install_hint: ClassVar[str] = ""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.model_info: ModelInfo | None = None

    @abc.abstractmethod
    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        """Load ``model`` (a path or a tag) and return its identity.

        ``model_version``, when given, overrides the version the engine would read from the model.
        Raise ``ModelLoadError`` with a one-line, actionable message when loading is impossible.
        """

    @property
    @abc.abstractmethod
    def parallelism(self) -> int:
        """How many sequences the engine decodes together; the server admits this many at once."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """The number of tokens ``text`` is as a prompt (special tokens in it parsed as such)."""

    @abc.abstractmethod
    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        """Stream the continuation of a raw ``prompt``.

        Implement as an async generator. Yield deltas whose texts join to the output; the last delta has
        ``finish_reason`` ``"stop"`` (end of sequence or a stop string, which is never emitted) or ``"length"``
        (exactly ``params.max_tokens`` tokens were generated). ``completion_tokens`` is exact: it counts the tokens
        of the output, stop strings included, but not the end-of-sequence token, so it reaches ``max_tokens``
        only when the output was cut by the limit. ``prompt_tokens`` is the prompt's length in tokens.

        Cancellation: the caller stops by calling ``aclose()`` on the generator or by cancelling the task that
        iterates it. Either way the engine must free the sequence's resources promptly (use ``try/finally``).
        """

    @property
    def active_generations(self) -> int:
        """How many generations are running inside the engine right now (for health checks and tests)."""
        return 0

    def slot_caches(self) -> list[SlotCache] | None:
        """Per slot (engine sequence), what its prompt cache holds; None when the engine keeps no such cache.

        Engines that reuse a cached prompt prefix override this (``/slots`` shows it as ``tokens_cached``) and
        report ``Delta.cached_tokens``. Called from the event loop: it must be quick and must not block.
        """
        return None

    async def close(self) -> None:  # noqa: B027 - optional to override
        """Release the model and every resource. Called once, at shutdown."""
