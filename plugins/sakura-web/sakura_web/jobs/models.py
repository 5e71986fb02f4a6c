"""The jobs API's bodies, and what a job keeps on disk."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sakura_translate.pipeline import ContextMode

from sakura_core.prompts import GlossaryEntry
from sakura_web.sampling import SamplingOverrides

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
#: States a job does not leave.
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class JobOptions(BaseModel):
    """How to translate an uploaded file (the ``options`` part of ``POST /jobs``, JSON)."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = Field(
        None, description="The file's format (srt, .srt...); default: from the file name's suffix."
    )
    glossary: list[GlossaryEntry] = Field(
        default_factory=list, description="Glossary entries; each chunk is sent those whose source occurs in it."
    )
    preset: str | None = Field(None, description="A preset's id (default: Sakura's recommended sampling).")
    sampling: SamplingOverrides | None = Field(None, description="max_tokens: tokens per chunk's answer.")
    chunk_chars: int | None = Field(None, ge=1, le=8192, description="Characters per request (default 512).")
    context: ContextMode = Field("translation", description="What precedes each chunk in its prompt.")


class Job(BaseModel):
    """A file translation job and its progress."""

    id: str
    object: Literal["job"] = "job"
    name: str = Field(description="The uploaded file's name.")
    format: str
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    chunks_total: int = 0
    chunks_done: int = 0
    characters_total: int = 0
    characters_done: int = 0
    characters_per_second: float | None = None
    seconds_left: float | None = None
    flagged_lines: int = 0
    error: str | None = None
    result_name: str | None = Field(None, description="The translated file's name, as sakura translate names it.")

    @property
    def finished(self) -> bool:
        """True in a state the job does not leave."""
        return self.state in FINAL_STATES


class JobList(BaseModel):
    """Jobs, newest first."""

    object: Literal["list"] = "list"
    data: list[Job]


class Flag(BaseModel):
    """A check a line of a chunk fails."""

    line: int = Field(description="The line's index in its chunk, from 0.")
    reason: str = Field(description="The check's reason code (sakura_translate.checks.Reason).")
    message: str


class Chunk(BaseModel):
    """One chunk of a job for proofreading: its source lines beside their translations."""

    index: int
    source: list[str]
    translation: list[str] = Field(description="One line per source line (empty while not translated).")
    flags: list[Flag]
    edited: bool = Field(description="True when its lines were edited by hand.")


class ChunkList(BaseModel):
    """A job's chunks, in file order."""

    object: Literal["list"] = "list"
    data: list[Chunk]


class ChunkEdit(BaseModel):
    """A chunk's lines, edited by hand."""

    model_config = ConfigDict(extra="forbid")

    translation: list[str] = Field(description="One line per source line of the chunk.")


class JobRecord(BaseModel):
    """What a job keeps in its folder's job.json: the job, its options and who created it."""

    job: Job
    options: JobOptions
    #: The address of the client that created it (the per-client limit counts its unfinished jobs).
    client: str | None = None
    #: The upload's name in the job's source folder (its suffix changed when ``options.format`` says so).
    source_name: str
