"""The bodies of ``/translate`` and ``/translate/info``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sakura_core.prompts import GlossaryEntry
from sakura_web.presets import Preset
from sakura_web.sampling import SamplingOverrides


class FileFormat(BaseModel):
    """A kind of file jobs read, by its file name's suffixes."""

    name: str
    extensions: list[str]
    description: str


class AuthInfo(BaseModel):
    """Whether requests need credentials, and which kinds, so a page can ask before its first call fails."""

    required: bool
    schemes: list[Literal["bearer", "basic"]] = Field(
        description="What the server takes: bearer (--api-key, also as the Basic password) and basic (--auth)."
    )


class Limits(BaseModel):
    """What the server refuses past (413, 429, 400)."""

    max_upload_bytes: int
    max_jobs_per_client: int
    max_text_chars: int


class TranslateInfo(BaseModel):
    """The served model and what the workbench offers for it."""

    model: str = Field(description="The served model's id.")
    name: str
    version: str | None
    quant: str | None
    prompt_format: str
    context_length: int
    parallelism: int = Field(description="Generations the server runs at once (its slots).")
    presets: list[Preset]
    file_formats: list[FileFormat]
    limits: Limits


class TranslateRequest(BaseModel):
    """Japanese text to translate with the served model's prompt format."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The Japanese text (several lines are translated together).")
    glossary: list[GlossaryEntry] = Field(
        default_factory=list, description="Glossary entries; only those whose source occurs in the text are sent."
    )
    context: str | None = Field(None, description="The previous passage's translation, sent as context.")
    preset: str | None = Field(None, description="A preset's id (default: Sakura's recommended sampling).")
    sampling: SamplingOverrides | None = None
    stream: bool = True


class Usage(BaseModel):
    """Tokens of one translation."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None


class TranslateResponse(BaseModel):
    """A translation (``stream: false``)."""

    text: str
    finish_reason: Literal["stop", "length"]
    usage: Usage


class TranslateDelta(BaseModel):
    """A streamed piece of the translation."""

    delta: str


class TranslateDone(BaseModel):
    """The stream's last event: the whole translation."""

    done: Literal[True] = True
    finish_reason: Literal["stop", "length"]
    text: str
    usage: Usage
