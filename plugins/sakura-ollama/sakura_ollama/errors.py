"""What went wrong talking to Ollama, as one line a user can act on."""

from __future__ import annotations

from sakura_core.engine import EngineError, EngineUnavailableError, ModelLoadError

#: Phrases in Ollama's error messages that mean the model does not fit in memory.
_OUT_OF_MEMORY_HINTS = ("more system memory", "out of memory", "cudamalloc failed", "insufficient memory", "oom")


def is_response_error(exc: BaseException) -> bool:
    """True for an error Ollama answered (``ollama.ResponseError``): an HTTP error status or an error line."""
    from ollama import ResponseError

    return isinstance(exc, ResponseError)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an ``ollama.ResponseError`` (None for other errors or a mid-stream error line)."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and status >= 0 else None


def message_of(exc: BaseException) -> str:
    """The server's own message for an ``ollama.ResponseError``, else the exception's text, on one line."""
    text = getattr(exc, "error", None)
    if not isinstance(text, str) or not text:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def is_transport_error(exc: BaseException) -> bool:
    """True for a failure to reach the server or a connection it dropped (not an answer it gave)."""
    if isinstance(exc, ConnectionError | OSError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with ollama
        return False
    return isinstance(exc, httpx.TransportError)


def is_out_of_memory(message: str) -> bool:
    """True when Ollama's message says the model does not fit in memory."""
    lowered = message.lower()
    return any(hint in lowered for hint in _OUT_OF_MEMORY_HINTS)


def load_error(exc: BaseException, *, model: str, host: str) -> ModelLoadError:
    """A ModelLoadError for a failure while loading ``model`` from the server at ``host``."""
    if is_transport_error(exc):
        return ModelLoadError(f"lost the connection to Ollama at {host} while loading {model!r}: {message_of(exc)}")
    message = message_of(exc)
    if is_out_of_memory(message):
        return ModelLoadError(
            f"Ollama cannot load {model!r}: {message}; use a smaller quantisation, a lower --num-ctx or --parallel"
        )
    return ModelLoadError(f"Ollama could not load {model!r}: {message}")


def serving_error(exc: BaseException, *, model: str, host: str) -> EngineError:
    """An EngineError for a failure while generating: unavailable (503) when Ollama cannot be reached or runs out of
    memory for now, else a plain failure (500); the message says which."""
    if is_transport_error(exc):
        return EngineUnavailableError(f"cannot reach Ollama at {host}: {message_of(exc)}")
    status = status_of(exc)
    message = message_of(exc)
    if status == 404:
        return EngineError(f"Ollama no longer has the model {model!r} ({message}); pull or create it again")
    if is_out_of_memory(message):
        return EngineUnavailableError(f"Ollama ran out of memory for {model!r}: {message}")
    suffix = f" (HTTP {status})" if status is not None else ""
    return EngineError(f"Ollama failed: {message}{suffix}")
