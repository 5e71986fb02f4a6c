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
