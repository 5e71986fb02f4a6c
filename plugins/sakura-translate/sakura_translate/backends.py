"""Where translations are generated: a running server over HTTP, or an engine loaded in this process.

Both run one generation to its end (``complete``) for sakura_core.degeneration.translate_with, and say which model
they serve (its id, and so its prompt format) and how many generations they run at once.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from sakura_core.engine import Engine, EngineError
from sakura_core.identity import parse_model_identity
from sakura_core.loaded_model import LoadedModel, PromptTooLongError
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import PromptFormat
from sakura_core.types import GenerationRequest, GenerationResult, ModelInfo
from sakura_translate.errors import ContextOverflow, GenerationError, InputError, zh

logger = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8080"
#: Waits, in seconds, before each new try when the server cannot be reached in the middle of a run.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0)
#: How long a run waits for a server that is still loading its model, and how often it asks.
LOADING_WAIT_SECONDS = 300.0
LOADING_POLL_SECONDS = 1.0
#: Error codes a server answers a prompt too long for its context with (Sakura's and OpenAI's; llama-server's).
CONTEXT_ERROR_CODES = ("context_length_exceeded", "exceed_context_size_error")


class ServerLoading(InputError):
    """The server answered 503: it is still loading its model (or too busy to answer)."""


class Backend(abc.ABC):
    """Generates translations for one model."""

    model_id: str
    prompt_format: PromptFormat
    parallelism: int
    #: Where it generates, for messages ("http://127.0.0.1:8080", "engine llamacpp").
    where: str

    @abc.abstractmethod
    async def complete(self, request: GenerationRequest) -> GenerationResult:
        """Run ``request`` (its messages and sampling parameters) to its end."""

    async def close(self) -> None:  # noqa: B027 - optional to override
        """Release what the backend holds."""


def server_url(address: str) -> str:
    """The base URL of a server from what a user types: ``127.0.0.1:8080`` gets ``http://``, and the OpenAI
    address ``…/v1`` that ``sakura run`` prints for clients loses its ``/v1``. InputError for another scheme."""
    from urllib.parse import urlsplit

    address = address.strip()
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(
            zh(
                f"--server {address}: not a server address; pass e.g. --server http://127.0.0.1:8080",
                "服务地址无效",
            )
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def format_for(registry: PluginRegistry, model_id: str, name: str, version: str | None) -> PromptFormat:
    """The registered prompt format for a served model's identity, as the server itself would choose it."""
    identity = ModelInfo(id=model_id, name=name, version=version, path=model_id, context_length=1)
    return registry.prompt_format_for(identity)


class HttpBackend(Backend):
    """A Sakura server, or llama.cpp's llama-server, through ``/v1/chat/completions``."""

    def __init__(self, url: str, api_key: str | None, session: Any) -> None:
        self.url = server_url(url)
        self.where = self.url
        self.api_key = api_key
        self.session = session
        #: True when ``--model`` chose a model other than the server's default.
        self.chosen = False

    @classmethod
    async def connect(
        cls,
        url: str,
        api_key: str | None,
        registry: PluginRegistry,
        model_version: str | None,
        served_model: str | None = None,
    ) -> HttpBackend:
        """Ask the server which model it serves and how many slots it has. An unreachable server, or one that
        refuses the key, is an InputError naming the URL. ``served_model`` chooses one of several served models
        by its ``/v1/models`` id (default: ``data[0]``, the server's default model)."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        url = server_url(url)  # before the session opens: a bad address leaves nothing to close
        backend = cls(url, api_key, aiohttp.ClientSession(timeout=timeout))
        try:
            models = await backend._wait_for_model()
            data = models.get("data") if isinstance(models, dict) else None
            if not data or not isinstance(data[0], dict) or not data[0].get("id"):
                raise InputError(
                    zh(
                        f"{backend.url}/v1/models names no model; is this a Sakura or llama.cpp server?",
                        "服务没有列出模型，请确认它是 Sakura 或 llama.cpp 服务",
                    )
                )
            entry = data[0]
            if served_model:
                ids = [str(card.get("id")) for card in data if isinstance(card, dict)]
                if served_model.removesuffix(".gguf") not in ids:
                    raise InputError(
                        zh(
                            f"{backend.url} serves no model {served_model!r}; its models: {', '.join(ids)}",
                            f"服务中没有模型 {served_model!r}，可选：{'、'.join(ids)}",
                        )
                    )
                entry = data[ids.index(served_model.removesuffix(".gguf"))]
                backend.chosen = entry is not data[0]
            backend.model_id = str(entry["id"])
            parsed = parse_model_identity(backend.model_id)
            name = entry.get("model_name") or parsed.name
            version = entry.get("model_version") or parsed.version
            backend.prompt_format = format_for(registry, backend.model_id, name, model_version or version)
            backend.parallelism = await backend._slots()
        except BaseException:
            await backend.close()
            raise
        return backend

    async def _wait_for_model(self) -> Any:
        """``/v1/models``, waiting while the server answers 503 (its model still loading)."""
        deadline = time.monotonic() + LOADING_WAIT_SECONDS
        while True:
            try:
                return await self._get_json("/v1/models")
            except ServerLoading:
                if time.monotonic() > deadline:
                    raise InputError(
                        zh(
                            f"{self.url} was still loading its model after {LOADING_WAIT_SECONDS:.0f} s;"
                            " try again later",
                            "服务一直在加载模型，请稍后再试",
                        )
                    ) from None
                logger.warning("%s is loading its model; waiting", self.url)
                await asyncio.sleep(LOADING_POLL_SECONDS)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _get_json(self, path: str) -> Any:
        import aiohttp

        try:
            async with self.session.get(self.url + path, headers=self._headers()) as response:
                status = response.status
                text = await response.text()
        except aiohttp.ClientError as exc:
            raise InputError(
                zh(
                    f"cannot reach a server at {self.url} ({exc}); start one with `sakura run --model MODEL` or "
                    "pass --server URL, or translate in-process with --engine NAME --model MODEL",
                    "连不上服务：请先用 sakura run 启动服务，或用 --engine/--model 在本进程翻译",
                )
            ) from None
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            raise ServerLoading(f"{self.url}{path} answered 503")
        if status in (401, 403):
            if self.api_key:
                raise InputError(
                    zh(
                        f"{self.url} refused the key ({status}); check --api-key or SAKURA_API_KEY",
                        "服务拒绝了这个密钥",
                    )
                )
            raise InputError(
                zh(f"{self.url} refused the request ({status}); pass its key with --api-key", "服务需要密钥")
            )
        if status >= 400:
            raise InputError(
                zh(
                    f"{self.url}{path} answered {status}; is this a Sakura server?",
                    "服务返回了错误，请确认它是 Sakura 服务",
                )
            )
        try:
            return json.loads(text)
        except ValueError:
            raise InputError(
                zh(
                    f"{self.url}{path} did not answer JSON; is this a Sakura server?",
                    "服务没有返回 JSON，请确认它是 Sakura 服务",
                )
            ) from None

    async def _slots(self) -> int:
        """The number of parallel slots: ``/slots``, else ``/health``'s counts, else llama-server's ``/props``."""
        for path in ("/slots", "/health", "/props"):
            if path == "/slots" and self.chosen:
                path = f"/slots?model={quote(self.model_id)}"  # several models: the chosen one's slots
            try:
                found = await self._get_json(path)
            except InputError:
                continue
            if path.startswith("/slots") and isinstance(found, list) and found:
                return len(found)
            if isinstance(found, dict):
                counted = int(found.get("slots_idle", 0) or 0) + int(found.get("slots_processing", 0) or 0)
                counted = counted or int(found.get("total_slots", 0) or 0)
                if counted > 0:
                    return counted
        logger.info("%s does not say how many slots it has: sending one chunk at a time (see --slots)", self.url)
        return 1

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        import aiohttp

        params = request.params
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": request.messages,
            "max_tokens": params.max_tokens,
            "temperature": 0.0 if params.greedy else params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "frequency_penalty": params.frequency_penalty,
            "presence_penalty": params.presence_penalty,
            "do_sample": not params.greedy,
            "stream": False,
        }
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = body["repeat_penalty"] = params.repetition_penalty
        if params.seed is not None:
            body["seed"] = params.seed
        started = time.perf_counter()
        for attempt, delay in enumerate((*RECONNECT_DELAYS, None)):
            try:
                async with self.session.post(
                    self.url + "/v1/chat/completions", json=body, headers=self._headers()
                ) as response:
                    status = response.status
                    answer = await response.json(content_type=None)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                problem = str(exc) or type(exc).__name__
            except ValueError:
                raise GenerationError(f"the server at {self.url} did not answer JSON") from None
            else:
                if status != HTTPStatus.SERVICE_UNAVAILABLE:  # busy or still loading: wait like a dropped server
                    break
                problem = f"{status}: {_error_message(answer)}"
            if delay is None:
                raise GenerationError(f"the server at {self.url} stopped answering ({problem})")
            logger.warning("%s: %s; trying again in %.1f s (%d)", self.url, problem, delay, attempt + 1)
            await asyncio.sleep(delay)
        if status == HTTPStatus.BAD_REQUEST and _error_code(answer) in CONTEXT_ERROR_CODES:
            raise ContextOverflow(f"the server at {self.url} cannot take this chunk: {_error_message(answer)}")
        if status != HTTPStatus.OK or not isinstance(answer, dict) or not answer.get("choices"):
            raise GenerationError(f"the server at {self.url} answered {status}: {_error_message(answer)}")
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return GenerationResult(
            text=(choice.get("message") or {}).get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=finish,
            seconds=time.perf_counter() - started,
        )

    async def close(self) -> None:
        await self.session.close()


def _error_code(answer: Any) -> str | None:
    """The ``code`` (or llama-server's ``type``) of an OpenAI-style error body."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return str(error.get("code") or error.get("type") or "")
    return None


def _error_message(answer: Any) -> str:
    """The message of an OpenAI-style error body, or the body itself."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("message", answer["error"]))
    return str(answer)[:200]


class EngineBackend(Backend):
    """An engine loaded in this process; generations go through its loaded model, as the server's do: the
    same prompt format, context limit, stop strings and plugin hooks."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.model_id = model.info.id
        self.where = f"engine {model.engine.name}"
        self.prompt_format = model.prompt_format
        self.parallelism = model.engine.parallelism

    @classmethod
    async def load(
        cls, engine: Engine, registry: PluginRegistry, model: str, model_version: str | None
    ) -> EngineBackend:
        """Load ``model``; a ModelLoadError propagates (its message is one line for the CLI)."""
        return cls(await LoadedModel.load(engine, registry, model, model_version))

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        name = self.model.engine.name
        try:
            prepared = await self.model.prepare(
                request.prompt, request.params, max_tokens=request.params.max_tokens, messages=request.messages
            )
            return await self.model.complete(prepared)
        except PromptTooLongError as exc:
            raise ContextOverflow(f"the {name} engine cannot take this chunk: {exc}") from None
        except ValidationError as exc:
            raise GenerationError(f"the {name} engine cannot take this chunk: {exc}") from None
        except EngineError as exc:
            raise GenerationError(f"the {name} engine failed: {exc}") from None

    async def close(self) -> None:
        await self.model.close()
