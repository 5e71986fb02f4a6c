"""The ollama engine: Sakura generations through an Ollama server's raw ``/api/generate``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from sakura_core.engine import Engine, EngineError, EngineOptions, EngineUnavailableError, ModelLoadError
from sakura_core.identity import make_model_info
from sakura_core.types import Delta, ModelInfo, SamplingParams
from sakura_ollama import model_details
from sakura_ollama.api import OllamaAddress, OllamaAPI
from sakura_ollama.errors import (
    is_response_error,
    is_transport_error,
    load_error,
    message_of,
    serving_error,
    status_of,
)
from sakura_ollama.model_source import import_gguf, local_model_file, show_or_pull
from sakura_ollama.options import DEFAULT_NUM_CTX, OllamaOptions
from sakura_ollama.process import OllamaServerProcess, find_ollama
from sakura_ollama.sampling import SAKURA_END_MARKERS, final_counts, ollama_options, text_stops
from sakura_ollama.tokenizer import TokenCounter, end_of_generation_texts, tokenizer_from_model_info

logger = logging.getLogger(__name__)


class OllamaEngine(Engine):
    """Serves a model that an Ollama server runs: a tag it has or pulls, or a local GGUF imported into it.

    Every generation is a raw, streaming ``/api/generate`` with the Sakura prompt the core rendered, so Ollama's
    chat template never applies. Token counts come from Ollama's ``prompt_eval_count`` and ``eval_count``; the
    model's own tokenizer, rebuilt from the vocabulary ``/api/show`` reports, answers ``count_tokens``.
    """

    name: ClassVar[str] = "ollama"
    description: ClassVar[str] = "Models an Ollama server runs: library tags, or a local GGUF imported into it"
    Options = OllamaOptions
    options: OllamaOptions

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.address = OllamaAddress.parse(self.options.ollama_host)
        #: The name the model has in Ollama (the tag, or the name a GGUF was imported under).
        self.ollama_model: str | None = None
        #: The server's version, once connected.
        self.server_version: str | None = None
        #: The ``ollama serve`` this engine started, if it started one.
        self.process: OllamaServerProcess | None = None
        self.tokenizer: TokenCounter | None = None
        self.end_markers: frozenset[str] = SAKURA_END_MARKERS
        self.num_ctx = DEFAULT_NUM_CTX
        self._api: OllamaAPI | None = None
        self._active = 0

    # -- loading -------------------------------------------------------------------------------------------------

    async def load(self, model: str, model_version: str | None = None) -> ModelInfo:
        """Connect to (or start) the server, get the model into it, read its identity and load it into memory."""
        try:
            import ollama  # noqa: F401 - fail early with the fix, not deep inside a call
        except ImportError:
            raise ModelLoadError(
                "the ollama engine needs the `ollama` package: "
                "pip install ./plugins/sakura-ollama  (in a sakura checkout)"
            ) from None
        self._api = OllamaAPI(self.address)
        try:
            return await self._load(self._api, model, model_version)
        except ModelLoadError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            if is_transport_error(exc) or is_response_error(exc):
                raise load_error(exc, model=model, host=self.address.url) from None
            raise

    async def _load(self, api: OllamaAPI, model: str, model_version: str | None) -> ModelInfo:
        self.server_version = await self._connect(api)
        logger.info("Ollama %s at %s", self.server_version or "(version unknown)", self.address.url)
        path = await asyncio.to_thread(local_model_file, model)
        if path is not None:
            self.ollama_model = await import_gguf(api, path, self.server_version)
            show = await api.show(self.ollama_model)
        else:
            self.ollama_model = model
            show = await show_or_pull(api, model, pull=self.options.pull)
        info = model_details.model_info_of(show)
        self.num_ctx = model_details.context_length(self.options.num_ctx, show, DEFAULT_NUM_CTX)
        self.tokenizer = await asyncio.to_thread(tokenizer_from_model_info, info)
        if self.tokenizer is None:
            logger.warning(
                "cannot rebuild the tokenizer of %r (tokenizer %r, pre %r): prompt token counts for context checks "
                "are estimates; reported usage comes from Ollama",
                model,
                info.get("tokenizer.ggml.model"),
                info.get("tokenizer.ggml.pre"),
            )
        else:
            logger.info("counting tokens with the model's %s", self.tokenizer.description)
        # stop strings that are the model's own end tokens; without its vocabulary, those of Sakura's formats
        self.end_markers = end_of_generation_texts(info) or SAKURA_END_MARKERS
        self.model_info = make_model_info(
            model,
            context_length=self.num_ctx,
            model_version=model_version,
            metadata_quant=model_details.quantization(show),
            meta=model_details.llama_server_meta(show),
        )
        logger.info("loading %s into Ollama (num_ctx %d)", self.ollama_model, self.num_ctx)
        await api.load(self.ollama_model, {"num_ctx": self.num_ctx}, self.options.keep_alive_value)
        return self.model_info

    async def _connect(self, api: OllamaAPI) -> str:
        """The server's version; start ``ollama serve`` first when none answers and starting one is allowed."""
        try:
            return await api.version()
        except Exception as exc:
            if not is_transport_error(exc):
                if status_of(exc) is not None:
                    raise ModelLoadError(
                        f"something answers at {self.address.url} but not as Ollama does "
                        f"(HTTP {status_of(exc)} for /api/version): check --ollama-host"
                    ) from None
                raise
        url = self.address.url
        if not self.options.spawn:
            raise ModelLoadError(
                f"no Ollama server answers at {url}: start one with `ollama serve`, point --ollama-host at one, "
                "or drop --no-spawn"
            )
        if not self.address.is_local:
            raise ModelLoadError(f"no Ollama server answers at {url}: start it there, or check --ollama-host")
        executable = find_ollama()
        if executable is None:
            raise ModelLoadError(
                f"no Ollama server answers at {url} and `ollama` is not on PATH: install Ollama "
                "(https://ollama.com/download) or point --ollama-host at a running server"
            )
        self.process = OllamaServerProcess(executable, self.address, parallel=self.options.parallel)
        await self.process.start(lambda: self._answers(api))
        return await api.version()

    @staticmethod
    async def _answers(api: OllamaAPI) -> bool:
        try:
            await api.version()
        except Exception:
            return False
        return True

    # -- serving -------------------------------------------------------------------------------------------------

    @property
    def parallelism(self) -> int:
        """Requests sent to Ollama at once (``--parallel``)."""
        return self.options.parallel

    @property
    def active_generations(self) -> int:
        """Generations whose Ollama stream is open."""
        return self._active

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's tokenizer; an estimate (one per character) when none was rebuilt."""
        if self.tokenizer is not None:
            return self.tokenizer.count(text)
        return len(text)

    def _require_loaded(self) -> tuple[OllamaAPI, str]:
        if self._api is None or self.ollama_model is None:
            raise EngineError("the ollama engine has no model loaded")
        return self._api, self.ollama_model

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        """Stream a raw generation from Ollama; closing this stream closes Ollama's, which stops the generation.

        Ollama cuts stop strings itself; the core's filter (this engine leaves ``handles_stop_strings`` off) makes
        sure none is ever passed on. Chunks are not tokens: counts come from logprobs, else one per chunk, and
        exactly from ``eval_count`` at the end.
        """
        api, model = self._require_loaded()
        options = ollama_options(params, num_ctx=self.num_ctx)
        ended_on_text = bool(text_stops(params.stop, self.end_markers))
        self._active += 1
        stream: Any = None
        try:
            try:
                stream = await api.generate(model, prompt, options, self.options.keep_alive_value)
                generated = 0
                held = ""  # text past the limit waits for Ollama's last chunk, which follows it at once
                async for chunk in stream:
                    piece = held + (chunk.response or "")
                    if chunk.done:
                        counts = final_counts(chunk.done_reason, chunk.eval_count, params, text_stop=ended_on_text)
                        so_far = max(counts.completion_tokens, min(generated, params.max_tokens))
                        yield Delta(piece, chunk.prompt_eval_count or 0, so_far, counts.finish_reason)
                        return
                    generated += len(chunk.logprobs) if chunk.logprobs else int(bool(piece))
                    if generated >= params.max_tokens:
                        # yielding the last token would let the core end the generation by closing the stream
                        # as Ollama finishes it: Ollama's runner can hang on that race; its own ending is exact
                        held = piece
                    elif piece:
                        yield Delta(piece, 0, generated)
            except Exception as exc:
                raise self._serving_error(exc) from exc
            raise EngineUnavailableError("Ollama ended the stream before the generation was done")
        finally:
            try:
                if stream is not None:  # closing Ollama's stream is what stops the generation there
                    with contextlib.suppress(Exception):
                        await stream.aclose()
            finally:
                self._active -= 1

    async def health(self) -> str | None:
        """None while the Ollama server answers, else why not (it stopped, or the one sakura started exited)."""
        if self._api is None:
            return "the ollama engine has no model loaded"
        if self.process is not None and not self.process.running:
            return "the `ollama serve` that sakura started has exited"
        try:
            await self._api.version()
        except Exception as exc:
            return f"no Ollama server answers at {self.address.url}: {message_of(exc)}"
        return None

    async def recover(self, reason: str) -> None:
        """The server's watchdog found a generation making no progress (the runner wedge seen with Ollama 0.5.4):
        restart the ``ollama serve`` that sakura started (its runners and their stuck generations go with it). A
        server sakura did not start is left alone, with one log line."""
        process, api = self.process, self._api
        if process is None or api is None:
            logger.warning(
                "%s; the Ollama server at %s was not started by sakura: restart it", reason, self.address.url
            )
            return
        logger.warning("%s: restarting the `ollama serve` that sakura started", reason)
        await process.stop()
        fresh = OllamaServerProcess(process.executable, self.address, parallel=self.options.parallel)
        await fresh.start(lambda: self._answers(api))
        self.process = fresh

    def _serving_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, EngineError | asyncio.CancelledError):
            return exc
        if is_transport_error(exc) or is_response_error(exc):
            error = serving_error(exc, model=self.ollama_model or "?", host=self.address.url)
            logger.warning("%s", error)
            return error
        return EngineError(f"Ollama failed: {message_of(exc)}")

    # -- shutdown ------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the client; stop the ``ollama serve`` this engine started, if any."""
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):
                await api.close()
        process, self.process = self.process, None
        if process is not None:
            await process.stop()
