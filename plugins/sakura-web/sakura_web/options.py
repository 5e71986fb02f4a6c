"""What ``sakura run`` takes for the workbench and its jobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class WebOptions(BaseModel):
    """The workbench's options (``register_run_options``): every field has a default, so nothing changes unless
    given."""

    web: bool = Field(True, description="Serve the translation workbench at / (--no-web: the API only).")
    jobs_dir: Path | None = Field(
        None,
        description="Folder where file translation jobs keep their uploads, progress and results "
        "(default: sakura/jobs in the user's data folder).",
    )
    max_upload_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Largest file a translation job may upload, in bytes (413 past it)."
    )
    jobs_kept: int = Field(
        50, ge=1, description="Jobs kept in the jobs folder; past it the oldest finished ones are removed."
    )
    jobs_per_client: int = Field(
        4, ge=1, description="Queued or running jobs one client address may have at once (429 past it)."
    )
    jobs_at_once: int = Field(
        1, ge=1, description="Jobs translated at the same time (each at most the server's parallelism)."
    )
    max_text_chars: int = Field(
        8000, ge=1, description="Longest text POST /translate takes, in characters (400 past it)."
    )
