"""What a run did: per file and in all, printed as a few lines and optionally saved as JSON (``--report``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

#: How the report names the encodings users know by other names.
ENCODING_NAMES = {"cp932": "Shift_JIS (cp932)", "euc_jp": "EUC-JP", "utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8"}


class Mismatch(BaseModel):
    """A chunk whose translation kept a different number of lines than its source, even after one retry."""

    chunk: int = Field(description="The chunk's number in its file, from 1.")
    source_lines: int
    translated_lines: int
    first_line: str = Field(description="The chunk's first source line (shortened).")


class ChunkStats(BaseModel):
    """Counts that add up over chunks, files and the run."""

    chunks: int = 0
    cached: int = Field(0, description="Chunks taken from the resume cache (or repeated in the file).")
    generations: int = 0
    degeneration_retries: int = 0
    line_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    characters: int = 0

    def add(self, other: ChunkStats) -> None:
        for name in ChunkStats.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class FileReport(BaseModel):
    """One translated file."""

    source: str
    output: str
    traditional: str | None = None
    kind: str
    encoding: str | None = None
    stats: ChunkStats
    mismatches: list[Mismatch] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RunReport(BaseModel):
    """The whole run."""

    model: str
    prompt_format: str
    where: str
    slots: int
    files: list[FileReport] = Field(default_factory=list)
    stats: ChunkStats = Field(default_factory=ChunkStats)
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.stats.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The report as printed."""
        stats = self.stats
        out = [
            f"model {self.model} ({self.prompt_format} prompt) via {self.where}, {self.slots} chunks at a time",
        ]
        for file in self.files:
            extra = f" and {file.traditional}" if file.traditional else ""
            encoding = f", read as {ENCODING_NAMES.get(file.encoding, file.encoding)}" if file.encoding else ""
            out.append(f"{file.source} → {file.output}{extra} ({file.kind}, {file.stats.chunks} chunks{encoding})")
            for mismatch in file.mismatches:
                out.append(
                    f"  chunk {mismatch.chunk}: {mismatch.source_lines} lines in, {mismatch.translated_lines} out; "
                    f"kept as translated ({mismatch.first_line})"
                )
            out.extend(f"  {note}" for note in file.notes)
        mismatched = sum(len(file.mismatches) for file in self.files)
        out.append(
            f"{stats.chunks} chunks ({stats.cached} from cache), {stats.generations} generations, "
            f"{stats.degeneration_retries} degeneration retries, {stats.line_retries} line-count retries, "
            f"{mismatched} line-count mismatches kept"
        )
        out.append(
            f"{stats.prompt_tokens} prompt + {stats.completion_tokens} generated tokens in {self.seconds:.1f} s "
            f"({self.tokens_per_second:.1f} tokens/s)"
        )
        return out
