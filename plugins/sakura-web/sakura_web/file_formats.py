"""The kinds of file translation jobs read: whatever ``sakura translate`` reads, described for the page."""

from __future__ import annotations

from sakura_translate.formats import SUPPORTED_SUFFIXES

from sakura_web.schemas import FileFormat

#: Descriptions of the suffixes sakura translate reads, grouped as people name them. A suffix the pipeline gains
#: later is offered under its own name until it is described here.
_DESCRIBED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("txt", (".txt",), "Plain text (a novel); the encoding is detected"),
    ("epub", (".epub",), "EPUB book"),
    ("srt", (".srt",), "SubRip subtitles"),
    ("ass", (".ass", ".ssa"), "Advanced SubStation Alpha subtitles"),
    ("vtt", (".vtt",), "WebVTT subtitles"),
    ("json", (".json",), "GalTransl name/message JSON, MTool, Paratranz, RPG Maker MV/MZ data"),
    ("trans", (".trans",), "Translator++ project"),
    ("md", (".md", ".markdown"), "Markdown"),
    ("po", (".po",), "gettext catalogue"),
    ("rpy", (".rpy",), "Ren'Py script"),
    ("xlsx", (".xlsx",), "Excel sheet (source and target columns)"),
)


def file_formats() -> list[FileFormat]:
    """Every kind of file a job can translate, in the order above, then any suffix not described yet."""
    supported = set(SUPPORTED_SUFFIXES)
    formats = [
        FileFormat(name=name, extensions=[s for s in suffixes if s in supported], description=description)
        for name, suffixes, description in _DESCRIBED
        if any(s in supported for s in suffixes)
    ]
    described = {suffix for entry in formats for suffix in entry.extensions}
    formats += [
        FileFormat(name=suffix.lstrip("."), extensions=[suffix], description=f"{suffix} files")
        for suffix in SUPPORTED_SUFFIXES
        if suffix not in described
    ]
    return formats


def suffix_for(format_name: str) -> str | None:
    """The file suffix a format's name (``srt``) or suffix (``.srt``) stands for; None when jobs do not read it."""
    wanted = format_name.strip().lower()
    for entry in file_formats():
        if wanted == entry.name or wanted in entry.extensions or "." + wanted in entry.extensions:
            return entry.extensions[0] if wanted == entry.name else (wanted if wanted.startswith(".") else "." + wanted)
    return None
