"""A game folder is written as a whole copy: the files not translated (images, audio, scripts, data files without
text) are copied beside the translated ones, so the copy runs as the game does."""

from __future__ import annotations

import shutil
from pathlib import Path

from sakura_translate.cache import CACHE_SUFFIX
from sakura_translate.formats.rpgmaker import is_game_folder
from sakura_translate.paths import FilePlan


def game_copies(source: Path, plans: list[FilePlan]) -> list[tuple[Path, Path]]:
    """For an RPG Maker MV/MZ game folder, each file that no plan translates and where its copy goes (the output
    folder of the plans, at the same relative path); nothing for any other folder."""
    if not source.is_dir() or not plans or not is_game_folder(source):
        return []
    first = plans[0]
    root = first.output
    for _ in first.source.relative_to(source).parts:
        root = root.parent
    translated = {plan.source.resolve() for plan in plans}
    resolved_root = root.resolve()
    copies = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        resolved = path.resolve()
        if resolved in translated or resolved.is_relative_to(resolved_root) or path.name.endswith(CACHE_SUFFIX):
            continue
        copies.append((path, root / relative))
    return copies


def copy_files(copies: list[tuple[Path, Path]]) -> None:
    """Copy each file (times and mode kept), making folders as needed."""
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
