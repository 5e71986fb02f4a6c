"""Checks on where a run writes, made before anything is generated: every output, copy and report path must be
writable, and an output that already exists (perhaps proofread by hand) is kept unless ``--overwrite``."""

from __future__ import annotations

import os
from pathlib import Path

from sakura_translate.cache import cache_path_for
from sakura_translate.errors import InputError, zh


def writable_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written (one line), or None: checked on the nearest folder that exists, since the
    run creates the missing ones."""
    if path.is_dir():
        return f"{path}: is a folder; name a file (or end the folder's name with / for a folder to write into)"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path}: cannot be written (permission denied)"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{path}: cannot be written, {ancestor} is a file and not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{path}: cannot be written in {ancestor} (permission denied); choose another --output"
    return None


def check_writable(paths: list[Path]) -> None:
    """InputError for the first of ``paths`` that cannot be written."""
    for path in paths:
        problem = writable_problem(path)
        if problem is not None:
            raise InputError(zh(problem, "无法写入输出；请换一个 --output 或 --report 位置"))


def is_finished_output(path: Path) -> bool:
    """Whether ``path`` is a translation a run finished before (it exists, and no resume cache says a run of this
    command is still under way)."""
    return path.exists() and not cache_path_for(path).exists()
