"""The Ollama HTTP API as this engine uses it, over the official ``ollama`` client's AsyncClient.

The client's own methods cover generate, pull, create (``files``) and list. A few calls it does not offer go through
its ``_request_raw``/``_request``, so they share its connection pool, headers and error mapping: ``GET /api/version``,
``POST /api/show`` with ``verbose`` (the vocabulary and tensors), ``HEAD``/``POST /api/blobs/:digest`` with a digest
computed once, and the legacy ``POST /api/create`` with a ``modelfile``.

``ollama`` (and httpx) are imported when an OllamaAPI is made, never at module import.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 11434
#: Bytes read at a time when hashing or uploading a model file.
CHUNK_BYTES = 1 << 20
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""}


@dataclass(frozen=True)
class OllamaAddress:
    """Where an Ollama server listens, parsed the way the ``ollama`` command reads OLLAMA_HOST."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> OllamaAddress:
        """``host``, ``host:port``, ``:port``, ``[v6]:port`` or a URL; port 11434 (80/443 for a URL scheme)."""
        text = value.strip().rstrip("/")
        scheme = "http"
        default_port = DEFAULT_PORT
        if "://" in text:
            scheme, _, text = text.partition("://")
            scheme = scheme.lower()
            default_port = 443 if scheme == "https" else 80
        parts = urlsplit(f"//{text}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in Ollama address {value!r}") from None
        host = parts.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"  # the server binds every address; a client reaches it on loopback
        return cls(scheme, host, port if port is not None else default_port)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:11434``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def listen(self) -> str:
        """The value of OLLAMA_HOST for an ``ollama serve`` that should listen here."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_local(self) -> bool:
        """True when the server would run on this machine (a spawned ``ollama serve`` can listen there)."""
        return self.scheme == "http" and (self.host in _LOCAL_HOSTS or self.host.startswith("127."))


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, as Ollama names blobs. Blocking: run it in a thread for large files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def quiet_http_client_logs() -> None:
    """Keep httpx's one INFO line per request (every generation) out of the server's log, unless configured."""
    http_logger = logging.getLogger("httpx")
    if http_logger.level == logging.NOTSET:
        http_logger.setLevel(logging.WARNING)


class OllamaAPI:
    """The calls this engine makes to one Ollama server."""

    def __init__(self, address: OllamaAddress, *, timeout: float | None = None) -> None:
        from ollama import AsyncClient

        quiet_http_client_logs()
        self.address = address
        self.client = AsyncClient(host=address.url, timeout=timeout)

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.close()

    async def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = await self.client._request_raw(method, path, json=body)
        return response.json()

    async def version(self) -> str:
        """The server's version string (``GET /api/version``)."""
        payload = await self._json("GET", "/api/version")
        return str(payload.get("version", ""))

    async def show(self, model: str) -> dict[str, Any]:
        """``POST /api/show`` with ``verbose``: details, model_info with the vocabulary, tensors, parameters."""
        payload = await self._json("POST", "/api/show", {"model": model, "verbose": True})
        return dict(payload)

    async def blob_exists(self, digest: str) -> bool:
        """``HEAD /api/blobs/:digest``: whether the server already has the blob."""
        from ollama import ResponseError

        try:
            await self.client._request_raw("HEAD", f"/api/blobs/{digest}")
        except ResponseError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def push_blob(self, digest: str, path: str | Path) -> None:
        """``POST /api/blobs/:digest`` with the file's bytes, streamed."""
        import anyio

        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(path, "rb") as handle:
                while chunk := await handle.read(CHUNK_BYTES):
                    yield chunk

        await self.client._request_raw("POST", f"/api/blobs/{digest}", content=chunks())

    async def create_from_files(self, model: str, files: dict[str, str]) -> AsyncIterator[str]:
        """``POST /api/create`` with ``files`` (the current API); yields status lines."""
        stream = await self.client.create(model=model, files=files, stream=True)
        async for progress in stream:
            yield progress.status or ""

    async def create_from_modelfile(self, model: str, modelfile: str) -> AsyncIterator[str]:
        """``POST /api/create`` with a ``modelfile`` (servers before the ``files`` API); yields status lines."""
        from ollama import ProgressResponse

        body = {"model": model, "name": model, "modelfile": modelfile, "stream": True}
        stream = await self.client._request(ProgressResponse, "POST", "/api/create", json=body, stream=True)
        async for progress in stream:
            yield progress.status or ""

    async def pull(self, model: str) -> AsyncIterator[Any]:
        """``POST /api/pull``; yields the client's ProgressResponse events (status, digest, total, completed)."""
        stream = await self.client.pull(model, stream=True)
        async for progress in stream:
            yield progress

    async def generate(
        self, model: str, prompt: str, options: Mapping[str, Any], keep_alive: float | str | None
    ) -> AsyncIterator[Any]:
        """A raw, streaming ``POST /api/generate``: the client's async iterator of GenerateResponse chunks.

        ``logprobs`` is asked for because each chunk then lists the tokens it carries (servers since 0.12.11; older
        ones ignore the field), which gives exact running token counts.
        """
        return await self.client.generate(
            model=model,
            prompt=prompt,
            raw=True,
            stream=True,
            options=dict(options),
            keep_alive=keep_alive,
            logprobs=True,
        )

    async def load(self, model: str, options: Mapping[str, Any], keep_alive: float | str | None) -> None:
        """Load the model into memory: ``POST /api/generate`` with an empty prompt."""
        await self.client.generate(model=model, prompt="", options=dict(options), keep_alive=keep_alive)
