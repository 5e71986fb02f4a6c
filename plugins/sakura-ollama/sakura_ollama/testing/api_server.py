"""A local server that speaks Ollama's HTTP API, for protocol tests of the ollama engine without an Ollama install.

It follows Ollama's API documentation (docs/api.md and docs/openapi.yaml of ollama/ollama): NDJSON streams,
``/api/generate`` (raw prompts, options, ``done_reason``, ``prompt_eval_count``/``eval_count``, loading on an empty
prompt), ``/api/pull`` progress events, ``/api/show`` (``model_info`` read from the GGUF, vocabulary and tensors
with ``verbose``), ``/api/tags``, ``/api/version``, ``/api/blobs/:digest`` (HEAD and POST), ``/api/create`` (from
``files``, or from a ``modelfile`` as servers before 0.5.5 took it), and error bodies ``{"error": "..."}`` with their
status codes, or as a line of the stream once it has begun.

Generation is real: llama.cpp (``llama_cpp.Llama``) runs the model file, one sequence at a time. Token accounting
mirrors Ollama's runner: ``eval_count`` counts every sampled token, the end-of-sequence token included; text is
held back while it is an incomplete UTF-8 character or could be the start of a stop string; a stop string and
what follows it are never sent. A client that disconnects stops its generation.

``llama_cpp`` and ``gguf`` are imported when a model is used.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import logging
import math
import re
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sakura_core.testing.ports import free_port

logger = logging.getLogger(__name__)

#: GGUF general.file_type values and the quantisation level Ollama shows for them.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M", 18: "Q6_K"}
NDJSON = "application/x-ndjson"


def now_iso() -> str:
    """A timestamp as Ollama writes ``created_at``."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def canonical_name(name: str) -> str:
    """``model`` → ``model:latest``; names with a tag stay as they are."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def json_error(status: int, message: str) -> web.Response:
    """Ollama's error body with its status."""
    return web.json_response({"error": message}, status=status)


def human_parameters(count: int) -> str:
    """``140.22K``, ``7.6B``: the parameter size as Ollama's details show it."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count)


@dataclass
class GGUFSummary:
    """What /api/show reports of a GGUF file: its key/values and tensors."""

    kv: dict[str, Any]
    tensors: list[dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> GGUFSummary:
        """Read the key/values (without the GGUF.* header fields) and the tensor list of a GGUF file."""
        from gguf import GGUFReader

        reader = GGUFReader(path)
        kv: dict[str, Any] = {}
        for name, reader_field in reader.fields.items():
            if name.startswith("GGUF."):
                continue
            value = reader_field.contents()
            kv[name] = value
        tensors: list[dict[str, Any]] = []
        parameters = 0
        for tensor in reader.tensors:
            shape = [int(n) for n in tensor.shape]
            tensors.append({"name": tensor.name, "type": tensor.tensor_type.name, "shape": shape})
            parameters += math.prod(shape)
        if "general.parameter_count" not in kv:  # Ollama counts the parameters itself
            kv["general.parameter_count"] = parameters
        return cls(kv, tensors)

    def model_info(self, *, verbose: bool) -> dict[str, Any]:
        """``model_info``: arrays are listed only with ``verbose`` (empty otherwise), as Ollama does."""
        return {k: (v if verbose or not isinstance(v, list) else []) for k, v in self.kv.items()}


@dataclass
class StoredModel:
    """A model the server has: a name, its GGUF blob and the parameters it was created with."""

    name: str
    digest: str
    path: Path
    summary: GGUFSummary
    parameters: dict[str, Any] = field(default_factory=dict)
    modified_at: str = field(default_factory=now_iso)

    def details(self) -> dict[str, Any]:
        """The ``details`` object of /api/tags and /api/show."""
        arch = str(self.summary.kv.get("general.architecture", ""))
        file_type = self.summary.kv.get("general.file_type")
        return {
            "parent_model": "",
            "format": "gguf",
            "family": arch,
            "families": [arch],
            "parameter_size": human_parameters(int(self.summary.kv.get("general.parameter_count", 0))),
            "quantization_level": FILE_TYPES.get(file_type, "unknown") if isinstance(file_type, int) else "unknown",
        }

    def parameters_text(self) -> str:
        """The Modelfile parameters as /api/show's ``parameters`` text."""
        lines = []
        for key, value in self.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                shown = json.dumps(item) if isinstance(item, str) else str(item)
                lines.append(f"{key:<30} {shown}")
        return "\n".join(lines)


@dataclass
class GenerationLog:
    """What the server saw of one /api/generate request."""

    model: str
    prompt: str
    options: dict[str, Any]
    raw: bool
    keep_alive: Any
    logprobs: bool = False
    outcome: str = "running"  # running, done, cancelled, error
    eval_count: int = 0


class LoadedModel:
    """A model loaded into llama.cpp with one context size; generates one sequence at a time."""

    def __init__(self, path: Path, num_ctx: int) -> None:
        from llama_cpp import Llama

        self.num_ctx = num_ctx
        self.llm = Llama(str(path), n_ctx=num_ctx, n_batch=min(num_ctx, 512), n_threads=2, verbose=False)
        self.lock = asyncio.Lock()
        self.seen_prompts: set[str] = set()

    def is_end_token(self, token: int) -> bool:
        """True for the model's end-of-generation tokens."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def logprob(self, token: int, piece: bytes) -> dict[str, Any]:
        """The logprobs entry of a token just sampled: its text and log probability under the last logits."""
        import numpy

        logits = numpy.asarray(self.llm.scores[self.llm.n_tokens - 1], dtype=numpy.float64)
        top = float(logits.max())
        log_total = top + float(numpy.log(numpy.exp(logits - top).sum()))
        return {
            "token": piece.decode("utf-8", "replace"),
            "logprob": float(logits[token]) - log_total,
            "bytes": list(piece),
        }

    def close(self) -> None:
        """Free the model."""
        self.llm.close()


class OllamaAPIServer:
    """An Ollama-API server on loopback, with llama.cpp behind ``/api/generate``.

    ``accepts_files``: True follows the current API (``/api/create`` with ``files``); False behaves as servers
    before it, which answer 400 to ``files`` and create from a ``modelfile``. ``library``: tag → GGUF path that
    ``/api/pull`` can fetch. ``omit_prompt_eval_count_on_cache_hit``: leave ``prompt_eval_count`` out when the
    prompt was evaluated before, as some Ollama versions do. ``load_error``: an error every load answers with
    (HTTP 500), e.g. Ollama's out-of-memory message. ``fail_after_chunks``: end each generation with an error line
    after that many chunks.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        version: str = "0.13.5",
        accepts_files: bool = True,
        library: Mapping[str, Path] | None = None,
        omit_prompt_eval_count_on_cache_hit: bool = False,
        supports_logprobs: bool = True,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.blobs_dir = self.models_dir / "blobs"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.version = version
        self.accepts_files = accepts_files
        self.library = {canonical_name(k): Path(v) for k, v in (library or {}).items()}
        self.omit_prompt_eval_count_on_cache_hit = omit_prompt_eval_count_on_cache_hit
        self.supports_logprobs = supports_logprobs
        self.load_error: str | None = None
        self.fail_after_chunks: int | None = None
        self.models: dict[str, StoredModel] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.generations: list[GenerationLog] = []
        self.active_generations = 0
        self.peak_generations = 0
        self._loaded: dict[str, LoadedModel] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int | None = None) -> str:
        """Listen on loopback (a free port unless given); return the base URL."""
        app = web.Application(client_max_size=1 << 34)
        app.router.add_get("/", self._root)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_route("HEAD", "/api/blobs/{digest}", self._blob_head)
        app.router.add_post("/api/blobs/{digest}", self._blob_push)
        app.router.add_post("/api/create", self._create)
        app.router.add_post("/api/pull", self._pull)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_delete("/api/delete", self._delete)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self.url

    async def stop(self) -> None:
        """Stop listening and free the loaded models."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for loaded in self._loaded.values():
            loaded.close()
        self._loaded.clear()

    def add_model(self, name: str, gguf_path: Path, parameters: Mapping[str, Any] | None = None) -> StoredModel:
        """Store ``gguf_path`` as a blob and register it under ``name`` (as ``ollama create`` would)."""
        digest = self._store_blob_file(gguf_path)
        return self._register(name, digest, dict(parameters or {}))

    def _store_blob_file(self, path: Path) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        target = self.blobs_dir / f"sha256-{digest}"
        if not target.exists():
            shutil.copyfile(path, target)
        return f"sha256:{digest}"

    def _register(self, name: str, digest: str, parameters: dict[str, Any]) -> StoredModel:
        path = self._blob_path(digest)
        stored = StoredModel(canonical_name(name), digest, path, GGUFSummary.read(path), parameters)
        self.models[stored.name] = stored
        return stored

    def _blob_path(self, digest: str) -> Path:
        return self.blobs_dir / digest.replace(":", "-")

    def _find(self, name: Any) -> StoredModel | None:
        return self.models.get(canonical_name(str(name))) if name else None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=json.loads) if request.can_read_body else {}
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "invalid JSON body"}), content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be an object"}), content_type="application/json"
            )
        self.requests.append((request.method, request.path, body))
        return body

    # -- simple routes -------------------------------------------------------------------------------------------

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, None))
        return web.json_response({"version": self.version})

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, None))
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": m.modified_at,
                "size": m.path.stat().st_size,
                "digest": m.digest.removeprefix("sha256:"),
                "details": m.details(),
            }
            for m in self.models.values()
        ]
        return web.json_response({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = body.get("model") or body.get("name")
        stored = self._find(name)
        if stored is None:
            return json_error(404, f"model '{name}' not found")
        verbose = bool(body.get("verbose"))
        payload: dict[str, Any] = {
            "modelfile": f"# Modelfile generated by the test server\nFROM {stored.path}\n",
            "parameters": stored.parameters_text(),
            "template": "{{ .Prompt }}",
            "details": stored.details(),
            "model_info": stored.summary.model_info(verbose=verbose),
            "capabilities": ["completion"],
            "modified_at": stored.modified_at,
        }
        if verbose:
            payload["tensors"] = stored.summary.tensors
        return web.json_response(payload)

    async def _delete(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        stored = self._find(body.get("model") or body.get("name"))
        if stored is None:
            return json_error(404, f"model '{body.get('model')}' not found")
        del self.models[stored.name]
        return web.Response()

    # -- blobs and create ----------------------------------------------------------------------------------------

    async def _blob_head(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, None))
        return web.Response(status=200 if self._blob_path(request.match_info["digest"]).exists() else 404)

    async def _blob_push(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, None))
        expected = request.match_info["digest"]
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", expected):
            return json_error(400, f"invalid digest format: {expected}")
        partial = self.blobs_dir / f"{expected.replace(':', '-')}.partial"
        digest = hashlib.sha256()
        with partial.open("wb") as handle:
            async for chunk in request.content.iter_chunked(1 << 20):
                digest.update(chunk)
                handle.write(chunk)
        actual = f"sha256:{digest.hexdigest()}"
        if actual != expected:
            partial.unlink()
            return json_error(400, f"digest mismatch, expected {expected!r}, got {actual!r}")
        partial.replace(self._blob_path(expected))
        return web.Response(status=201)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        name = body.get("model") or body.get("name")
        if not name:
            return json_error(400, "model is required")
        files = body.get("files")
        if files and self.accepts_files:
            digests = list(files.values()) if isinstance(files, dict) else []
            if len(digests) != 1:
                return json_error(400, "exactly one GGUF file is supported by this test server")
            digest = str(digests[0])
            parameters = dict(body.get("parameters") or {})
        elif body.get("modelfile") and not self.accepts_files:
            match = re.search(r"^FROM\s+(\S+)\s*$", str(body["modelfile"]), re.MULTILINE)
            if match is None:
                return json_error(400, "no FROM line in the Modelfile")
            source = match.group(1)
            if not source.startswith("@"):
                return json_error(400, "this test server takes FROM @sha256:... only")
            digest = source[1:]
            parameters = {}
            for key, value in re.findall(r"^PARAMETER\s+(\w+)\s+(.+)$", str(body["modelfile"]), re.MULTILINE):
                parameters.setdefault(key, []).append(value.strip().strip('"'))
        elif self.accepts_files:
            return json_error(400, "neither 'from' or 'files' was specified")
        else:
            return json_error(400, "path or Modelfile are required")
        path = self._blob_path(digest)
        if not path.exists():
            return json_error(400, f"blob {digest} not found; push it to /api/blobs first")
        with path.open("rb") as handle:
            if handle.read(4) != b"GGUF":
                return json_error(400, "invalid file magic")
        self._register(str(name), digest, parameters)
        statuses = ["parsing GGUF", f"using existing layer {digest}", "writing manifest", "success"]
        if body.get("stream") is False:
            return web.json_response({"status": "success"})
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        for status in statuses:
            await response.write(json.dumps({"status": status}).encode() + b"\n")
        await response.write_eof()
        return response

    # -- pull ----------------------------------------------------------------------------------------------------

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        name = canonical_name(str(body.get("model") or body.get("name") or ""))
        source = self.library.get(name)
        stream = body.get("stream", True) is not False
        if not stream:
            if source is None:
                return json_error(500, "pull model manifest: file does not exist")
            self._register(name, self._store_blob_file(source), {})
            return web.json_response({"status": "success"})
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)

        async def send(event: dict[str, Any]) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        await send({"status": "pulling manifest"})
        if source is None:
            await send({"error": "pull model manifest: file does not exist"})
            await response.write_eof()
            return response
        data = source.read_bytes()
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        params_blob = json.dumps({"stop": []}).encode()
        params_digest = f"sha256:{hashlib.sha256(params_blob).hexdigest()}"
        for layer_digest, size in ((digest, len(data)), (params_digest, len(params_blob))):
            steps = 4 if size > 1000 else 1
            for step in range(1, steps + 1):
                completed = size * step // steps
                await send(
                    {
                        "status": f"pulling {layer_digest[7:19]}",
                        "digest": layer_digest,
                        "total": size,
                        "completed": completed,
                    }
                )
                await asyncio.sleep(0)
        self._blob_path(digest).write_bytes(data)
        self._register(name, digest, {})
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            await send({"status": status})
        await response.write_eof()
        return response

    # -- generate ------------------------------------------------------------------------------------------------

    async def _loaded_model(self, stored: StoredModel, num_ctx: int) -> LoadedModel:
        loaded = self._loaded.get(stored.name)
        if loaded is not None and loaded.num_ctx == num_ctx:
            return loaded
        if loaded is not None:  # another context size: Ollama reloads the runner
            async with loaded.lock:
                loaded.close()
        loaded = await asyncio.to_thread(LoadedModel, stored.path, num_ctx)
        self._loaded[stored.name] = loaded
        return loaded

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._body(request)
        name = body.get("model")
        stored = self._find(name)
        if stored is None:
            return json_error(404, f'model "{name}" not found, try pulling it first')
        options = dict(body.get("options") or {})
        if self.load_error is not None:
            return json_error(500, self.load_error)
        num_ctx = int(options.get("num_ctx") or stored.parameters.get("num_ctx", [2048])[-1])
        loaded = await self._loaded_model(stored, num_ctx)
        load_ns = time.perf_counter_ns() - started
        prompt = body.get("prompt")
        if not prompt:
            reason = "unload" if body.get("keep_alive") in (0, "0", "0s") else "load"
            return web.json_response(
                {"model": name, "created_at": now_iso(), "response": "", "done": True, "done_reason": reason}
            )
        if not body.get("raw"):
            return json_error(400, "this test server generates from raw prompts only")
        log = GenerationLog(
            str(name),
            str(prompt),
            options,
            True,
            body.get("keep_alive"),
            logprobs=bool(body.get("logprobs")) and self.supports_logprobs,
        )
        self.generations.append(log)
        streaming = body.get("stream", True) is not False
        response = web.StreamResponse(headers={"Content-Type": NDJSON if streaming else "application/json"})
        await response.prepare(request)
        pieces: list[str] = []
        try:
            async with loaded.lock:
                self.active_generations += 1
                self.peak_generations = max(self.peak_generations, self.active_generations)
                try:
                    final = await self._run(request, response, loaded, log, options, streaming, pieces)
                finally:
                    self.active_generations -= 1
            if final is None:
                return response
            final.update(
                model=name,
                created_at=now_iso(),
                total_duration=time.perf_counter_ns() - started,
                load_duration=load_ns,
            )
            if not streaming:
                final["response"] = "".join(pieces)
            await response.write(json.dumps(final).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            log.outcome = "cancelled"
            raise
        return response

    async def _run(
        self,
        request: web.Request,
        response: web.StreamResponse,
        loaded: LoadedModel,
        log: GenerationLog,
        options: dict[str, Any],
        streaming: bool,
        pieces: list[str],
    ) -> dict[str, Any] | None:
        """Generate; stream chunks; return the final chunk's statistics, or None when the client went away."""
        llm = loaded.llm
        prompt_tokens = llm.tokenize(log.prompt.encode(), add_bos=True, special=True)
        cached = log.prompt in loaded.seen_prompts
        loaded.seen_prompts.add(log.prompt)
        num_predict = int(options.get("num_predict", -1))
        stops = options.get("stop") or []
        stops = [stops] if isinstance(stops, str) else [s for s in stops if s]
        seed = options.get("seed")
        llm.set_seed(int(seed) if seed is not None and int(seed) >= 0 else int(time.time_ns() % (2**31)))
        tokens = llm.generate(
            prompt_tokens,
            top_k=int(options.get("top_k", 40)),
            top_p=float(options.get("top_p", 0.9)),
            min_p=float(options.get("min_p", 0.0)),
            temp=float(options.get("temperature", 0.8)),
            repeat_penalty=float(options.get("repeat_penalty", 1.1)),
            frequency_penalty=float(options.get("frequency_penalty", 0.0)),
            presence_penalty=float(options.get("presence_penalty", 0.0)),
            reset=True,
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")  # Ollama drops invalid bytes
        pending = ""
        pending_logprobs: list[dict[str, Any]] = []
        eval_count = 0
        chunks = 0
        generation_started = time.perf_counter_ns()
        prompt_ns = 0
        done_reason = "stop"
        try:
            while True:
                if num_predict >= 0 and eval_count >= num_predict:
                    done_reason = "length"
                    break
                token = await asyncio.to_thread(next, tokens)
                if eval_count == 0:
                    prompt_ns = time.perf_counter_ns() - generation_started
                eval_count += 1
                if loaded.is_end_token(token):
                    break
                piece = llm.detokenize([token], special=True)
                if log.logprobs:
                    pending_logprobs.append(loaded.logprob(token, piece))
                pending += decoder.decode(piece)
                cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    pending = pending[:cut]
                    break
                if any(pending.endswith(s[:n]) for s in stops for n in range(1, len(s))):
                    continue  # could be the start of a stop string: hold it
                if not pending:
                    continue  # an incomplete UTF-8 character: hold it
                if not await self._send_piece(request, response, log, pending, pending_logprobs, streaming, pieces):
                    return None
                pending = ""
                pending_logprobs = []
                chunks += 1
                if self.fail_after_chunks is not None and chunks >= self.fail_after_chunks:
                    log.outcome = "error"
                    error = {"error": "an error was encountered while running the model"}
                    await response.write(json.dumps(error).encode() + b"\n")
                    await response.write_eof()
                    return None
        finally:
            tokens.close()
        if pending and not await self._send_piece(request, response, log, pending, pending_logprobs, streaming, pieces):
            return None
        log.outcome = "done"
        log.eval_count = eval_count
        final: dict[str, Any] = {
            "response": "",
            "done": True,
            "done_reason": done_reason,
            "prompt_eval_duration": prompt_ns,
            "eval_count": eval_count,
            "eval_duration": time.perf_counter_ns() - generation_started - prompt_ns,
        }
        if not (cached and self.omit_prompt_eval_count_on_cache_hit):
            final["prompt_eval_count"] = len(prompt_tokens)
        return final

    async def _send_piece(
        self,
        request: web.Request,
        response: web.StreamResponse,
        log: GenerationLog,
        text: str,
        logprobs: list[dict[str, Any]],
        streaming: bool,
        pieces: list[str],
    ) -> bool:
        """Send one chunk (with its tokens' logprobs when asked); False when the client has gone (cancelled)."""
        pieces.append(text)
        if not streaming:
            return True
        transport = request.transport
        if transport is None or transport.is_closing():
            log.outcome = "cancelled"
            return False
        chunk: dict[str, Any] = {"model": log.model, "created_at": now_iso(), "response": text, "done": False}
        if log.logprobs:
            chunk["logprobs"] = logprobs
        try:
            await response.write(json.dumps(chunk).encode() + b"\n")
        except (ConnectionResetError, RuntimeError):
            log.outcome = "cancelled"
            return False
        return True


@contextlib.asynccontextmanager
async def running_api_server(models_dir: Path, **kwargs: Any) -> AsyncIterator[OllamaAPIServer]:
    """An OllamaAPIServer listening for the duration of the ``async with`` block."""
    server = OllamaAPIServer(models_dir, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
