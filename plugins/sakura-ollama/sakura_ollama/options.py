"""The ollama engine's options: one field per ``sakura run --engine ollama`` option."""

from __future__ import annotations

import os
import re

from pydantic import Field, field_validator

from sakura_core.engine import EngineOptions

#: Where Ollama listens unless OLLAMA_HOST says otherwise (Ollama's own default).
DEFAULT_OLLAMA_HOST = "127.0.0.1:11434"
#: Context per sequence when neither --num-ctx nor the model's Modelfile sets one: Sakura's prompts plus 512 new
#: tokens fit, and it is what Sakura_Launcher_GUI gives llama-server.
DEFAULT_NUM_CTX = 2048
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def default_ollama_host() -> str:
    """The Ollama address the ``ollama`` command itself would use: OLLAMA_HOST, else 127.0.0.1:11434."""
    return os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST


class OllamaOptions(EngineOptions):
    """Options of the ollama engine."""

    ollama_host: str = Field(
        default_factory=default_ollama_host,
        description="Ollama server address, as OLLAMA_HOST takes it (host:port or a URL).",
    )
    pull: bool = Field(True, description="Pull the model from the Ollama library when the server lacks it.")
    spawn: bool = Field(
        True,
        description="Start `ollama serve` when no server answers and `ollama` is on PATH; stop it on exit.",
    )
    keep_alive: str | None = Field(
        None,
        description="How long Ollama keeps the model loaded after a request (5m, 1h, -1 = forever; Ollama's default).",
    )
    num_ctx: int | None = Field(
        None,
        ge=16,
        description=(
            f"Context per sequence in tokens (default: the Modelfile's num_ctx, else {DEFAULT_NUM_CTX}); "
            "Ollama reserves num_ctx × OLLAMA_NUM_PARALLEL."
        ),
    )
    parallel: int = Field(
        4,
        ge=1,
        description=(
            "Requests sent to Ollama at once (the rest wait in sakura's queue); Ollama runs them together up "
            "to its OLLAMA_NUM_PARALLEL, which a spawned server gets from this value."
        ),
        json_schema_extra={"aliases": ["-np"]},
    )

    @field_validator("ollama_host")
    @classmethod
    def _host_is_an_address(cls, value: str) -> str:
        from sakura_ollama.api import OllamaAddress

        value = value.strip()
        if not value:
            raise ValueError("must not be empty (example: 127.0.0.1:11434)")
        OllamaAddress.parse(value)  # raises ValueError with the reason
        return value

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a duration such as 5m, 1h or -1")
        return value.strip() if value is not None else None

    @property
    def keep_alive_value(self) -> float | str | None:
        """``--keep-alive`` as Ollama takes it."""
        return keep_alive_value(self.keep_alive)


def keep_alive_value(value: str | None) -> float | str | None:
    """A plain number is seconds (negative: forever), anything else a duration such as ``5m``."""
    if value is None:
        return None
    return float(value) if _NUMBER.match(value) else value
