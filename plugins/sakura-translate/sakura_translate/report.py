"""What a run did: per file and in all, printed as a few lines and optionally saved as JSON (``--report``)."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field, computed_field

#: How the report names the encodings users know by other names.
ENCODING_NAMES = {"cp932": "Shift_JIS (cp932)", "euc_jp": "EUC-JP", "utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8"}


#: Characters of a flagged line shown in the printed report (the JSON report has them all).
SHOWN_CHARS = 40


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


class FlaggedLine(BaseModel):
    """A line whose every translation failed the checks: the output keeps its source text."""

    file: str
    position: int = Field(description="The line's place among the file's texts, in reading order, from 1.")
    source: str
    output: str = Field(description="The model's last answer for the line (empty when there was none).")
    reasons: list[str] = Field(description="The checks it failed (see sakura_translate.checks.Reason).")


class ChunkStats(BaseModel):
    """Counts that add up over chunks, files and the run."""

    chunks: int = 0
    cached: int = Field(0, description="Chunks taken from the resume cache of an earlier run.")
    repeated: int = Field(0, description="Chunks whose text occurs earlier in the run: translated once.")
    generations: int = 0
    degeneration_retries: int = 0
    line_retries: int = Field(0, description="Retries with a higher frequency penalty after a failed check.")
    splits: int = Field(0, description="Chunks split in two after failing their checks twice.")
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
    flagged: list[FlaggedLine] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RunReport(BaseModel):
    """The whole run."""

    model: str
    prompt_format: str
    where: str
    slots: int
    files: list[FileReport] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list, description="Outputs that existed and were kept (no --overwrite).")
    notes: list[str] = Field(default_factory=list, description="Files of a folder left out, and why.")
    stats: ChunkStats = Field(default_factory=ChunkStats)
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]  # pydantic documents this pairing
    @property
    def flagged_by_reason(self) -> dict[str, int]:
        """Flagged lines of the run counted by reason (a line with two reasons counts under both)."""
        counts = Counter(reason for file in self.files for line in file.flagged for reason in line.reasons)
        return dict(sorted(counts.items()))

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
            for line in file.flagged:
                out.append(
                    f"  line {line.position} kept in the source [{', '.join(line.reasons)}]: "
                    f"{_shown(line.source)} → {_shown(line.output)}"
                )
            out.extend(f"  {note}" for note in file.notes)
        out.extend(f"{path}: exists, kept (pass --overwrite to translate its source again)" for path in self.kept)
        out.extend(self.notes)
        flagged = sum(len(file.flagged) for file in self.files)
        by_reason = ", ".join(f"{reason} {count}" for reason, count in self.flagged_by_reason.items())
        out.append(
            f"{stats.chunks} chunks ({stats.cached} from cache"
            + (f", {stats.repeated} repeated" if stats.repeated else "")
            + f"), {stats.generations} generations, "
            f"{stats.degeneration_retries} degeneration retries, {stats.line_retries} check retries, "
            f"{stats.splits} splits, {flagged} lines flagged" + (f" ({by_reason})" if by_reason else "")
        )
        overflowing = self.flagged_by_reason.get("context_overflow", 0)
        if overflowing:
            out.append(
                f"{overflowing} lines do not fit the model's context even alone and were kept in the source: "
                "give the model a larger context (--n-ctx); a smaller --chunk-chars cannot split a line"
            )
        out.append(
            f"{stats.prompt_tokens} prompt + {stats.completion_tokens} generated tokens in {self.seconds:.1f} s "
            f"({self.tokens_per_second:.1f} tokens/s)"
        )
        return out
