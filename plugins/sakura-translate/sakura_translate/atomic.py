"""Writing output files atomically: a reader sees the old file or the complete new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sakura_translate.errors import GenerationError


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.
    GenerationError (one line) when the disk refuses: the translation stays in the resume cache."""
    try:
        _write(path, data)
    except OSError as exc:
        raise GenerationError(
            f"cannot write {path} ({exc.strerror or exc}); free the disk or fix its permissions"
        ) from None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
