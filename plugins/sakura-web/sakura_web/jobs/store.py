"""The jobs folder: one folder per job, named by its id, holding its upload, options, the pipeline's resume cache,
its result and the chunks edited by hand. Nothing a client sends can name a path outside its job's folder."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import unicodedata
from pathlib import Path

from pydantic import ValidationError
from sakura_translate.atomic import write_atomic
from sakura_translate.cache import cache_path_for

from sakura_core.server.http.errors import invalid_request
from sakura_web.jobs.models import JobRecord

logger = logging.getLogger(__name__)

RECORD_FILE = "job.json"
EDITS_FILE = "edits.json"
SOURCE_FOLDER = "source"
OUTPUT_FOLDER = "output"
#: Longest file name kept, in characters (the suffix is kept when a longer one is cut).
MAX_NAME_CHARS = 160
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


def default_jobs_dir() -> Path:
    """``sakura/jobs`` in the user's data folder (``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sakura", appauthor=False)) / "jobs"


def safe_file_name(raw: str | None) -> str:
    """An uploaded file's name reduced to its base name; 400 for a name that is empty, holds a NUL or control
    character, or is only dots, once reduced. Folders (``../``, ``C:\\``, absolute paths) are dropped."""
    if raw is None or "\x00" in raw:
        raise invalid_request(
            "the uploaded file needs a file name without NUL characters", param="file", code="invalid_file_name"
        )
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if any(unicodedata.category(char).startswith("C") for char in name) or not name.strip("."):
        raise invalid_request(
            f"the uploaded file's name {raw!r} is not a file name", param="file", code="invalid_file_name"
        )
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        name = stem[: MAX_NAME_CHARS - len(suffix) - 1] + dot + suffix if dot and len(suffix) < 16 else name[:160]
    return name


def new_job_id() -> str:
    """A fresh, unguessable job id (16 hex digits)."""
    return secrets.token_hex(8)


def is_job_id(text: str) -> bool:
    """True when ``text`` has the shape of a job id (so it names a folder inside the jobs folder)."""
    return bool(_JOB_ID.match(text))


class JobFolder:
    """Where one job's files are."""

    def __init__(self, root: Path, job_id: str) -> None:
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.path = root / job_id

    def inside(self, *parts: str) -> Path:
        """A path in the folder; ValueError for one that would leave it."""
        path = self.path.joinpath(*parts)
        if os.path.commonpath([path.resolve(), self.path.resolve()]) != str(self.path.resolve()):
            raise ValueError(f"{path} is outside the job's folder")
        return path

    @property
    def record(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def edits(self) -> Path:
        return self.path / EDITS_FILE

    def source(self, name: str) -> Path:
        """The uploaded file, kept under its (safe) name."""
        return self.inside(SOURCE_FOLDER, name)

    def output(self, result_name: str) -> Path:
        """The translated file."""
        return self.inside(OUTPUT_FOLDER, result_name)

    def cache(self, result_name: str) -> Path:
        """The pipeline's resume cache, beside the output as the CLI keeps it."""
        return cache_path_for(self.output(result_name))


class JobStore:
    """Reads and writes the jobs folder (blocking: callers run it off the event loop)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.root, job_id)

    def save(self, record: JobRecord) -> None:
        """Write the job's record atomically."""
        folder = self.folder(record.job.id)
        folder.path.mkdir(parents=True, exist_ok=True)
        write_atomic(folder.record, record.model_dump_json(indent=1).encode("utf-8"))

    def write_source(self, job_id: str, name: str, data: bytes) -> Path:
        """Keep the upload; returns where it is."""
        path = self.folder(job_id).source(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def load_all(self) -> list[JobRecord]:
        """Every job in the folder that reads (a folder without a readable record is skipped with a warning)."""
        if not self.root.is_dir():
            return []
        records = []
        for entry in sorted(self.root.iterdir()):
            if not is_job_id(entry.name) or not (entry / RECORD_FILE).is_file():
                continue
            try:
                records.append(JobRecord.model_validate_json((entry / RECORD_FILE).read_bytes()))
            except (OSError, ValidationError) as exc:
                logger.warning("%s: not a job this version reads (%s); left alone", entry, exc)
        return records

    def load_edits(self, job_id: str) -> dict[int, list[str]]:
        """The chunks edited by hand: chunk index → its lines."""
        path = self.folder(job_id).edits
        if not path.is_file():
            return {}
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(index): [str(line) for line in lines] for index, lines in raw.items()}

    def save_edits(self, job_id: str, edits: dict[int, list[str]]) -> None:
        data = json.dumps({str(k): v for k, v in sorted(edits.items())}, ensure_ascii=False, indent=1)
        write_atomic(self.folder(job_id).edits, data.encode("utf-8"))

    def remove(self, job_id: str) -> None:
        """Delete the job's folder and everything in it."""
        shutil.rmtree(self.folder(job_id).path, ignore_errors=True)
