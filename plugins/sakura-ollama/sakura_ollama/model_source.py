"""Getting the model into Ollama: a tag it has or pulls, or a local GGUF file imported through the API."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, TextIO

from sakura_core.engine import ModelLoadError
from sakura_core.identity import model_base_name
from sakura_ollama.api import OllamaAPI, file_digest
from sakura_ollama.errors import is_response_error, message_of, status_of
from sakura_ollama.progress import PullProgress

logger = logging.getLogger(__name__)

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
#: The first Ollama release whose /api/create takes ``files``.
FILES_API_SINCE = (0, 5, 5)


def takes_files(server_version: str | None) -> bool | None:
    """Whether a server of this version creates models from ``files``; None when the version does not say."""
    match = _VERSION.match(server_version or "")
    if match is None:
        return None
    return tuple(int(part) for part in match.groups()) >= FILES_API_SINCE


def local_model_file(model: str) -> Path | None:
    """The local file ``model`` names (an existing file, or any path ending in ``.gguf``); None for a tag."""
    path = Path(model).expanduser()
    return path if model.lower().endswith(".gguf") or path.is_file() else None


def ollama_name_for_file(path: Path) -> str:
    """The name a local GGUF is created under in Ollama: its base name, with characters Ollama refuses replaced."""
    name = _NAME_UNSAFE.sub("-", model_base_name(path.name)).strip("-.") or "sakura-model"
    return name[:80]


async def import_gguf(api: OllamaAPI, path: Path, server_version: str | None = None) -> str:
    """Upload a GGUF as a blob (unless the server has it) and create a model from it; return the model's name.

    The current API creates from ``files`` (file name → digest). A server that predates it answers 400; then the
    model is created from a Modelfile that names the blob (``FROM @sha256:...``), the form those servers take. A
    server whose version says it takes ``files`` gets no second try: its 400 is about the file.
    """
    if not await asyncio.to_thread(path.is_file):
        raise ModelLoadError(f"model file not found: {path}")
    name = ollama_name_for_file(path)
    logger.info("importing %s into Ollama as %r", path, name)
    digest = await asyncio.to_thread(file_digest, path)
    if await api.blob_exists(digest):
        logger.info("Ollama already has the blob %s", digest)
    else:
        size = (await asyncio.to_thread(path.stat)).st_size
        logger.info("uploading %s (%.1f MB) to Ollama", path.name, size / 1e6)
        await api.push_blob(digest, path)
    try:
        async for status in api.create_from_files(name, {path.name: digest}):
            logger.debug("create %s: %s", name, status)
    except Exception as exc:
        if status_of(exc) != 400:
            raise
        first_error = message_of(exc)
        if takes_files(server_version):
            raise ModelLoadError(f"Ollama could not create a model from {path.name}: {first_error}") from None
        logger.info("the server refused `files` (%s); creating %r from a Modelfile instead", first_error, name)
        try:
            async for status in api.create_from_modelfile(name, f"FROM @{digest}\n"):
                logger.debug("create %s: %s", name, status)
        except Exception as legacy_exc:
            if not is_response_error(legacy_exc):
                raise
            raise ModelLoadError(
                f"Ollama could not create a model from {path.name}: {first_error}; "
                f"with a Modelfile: {message_of(legacy_exc)}"
            ) from None
    return name


async def show_or_pull(
    api: OllamaAPI, tag: str, *, pull: bool, progress_stream: TextIO | None = None
) -> dict[str, Any]:
    """``/api/show`` of ``tag``; when the server lacks it, pull it first (if ``pull`` allows), with progress bars."""
    try:
        return await api.show(tag)
    except Exception as exc:
        if status_of(exc) != 404:
            raise
    if not pull:
        raise ModelLoadError(
            f"Ollama at {api.address.url} has no model {tag!r}: pull it with `ollama pull {tag}` or drop --no-pull"
        )
    logger.info("pulling %s", tag)
    progress = PullProgress(progress_stream)
    try:
        async for event in api.pull(tag):
            progress.update(event)
    except Exception as exc:
        if not is_response_error(exc):
            raise
        raise ModelLoadError(f"Ollama could not pull {tag!r}: {message_of(exc)}") from None
    finally:
        progress.finish()
    return await api.show(tag)
