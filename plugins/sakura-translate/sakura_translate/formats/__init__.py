"""The input formats ``sakura translate`` reads: a reader per file suffix (``.json`` and ``.trans`` are told apart by
content in ``jsonformats``); each reader returns a Document that writes its own file back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Document, LoadOptions, Translations
from sakura_translate.formats.epub import EpubDocument
from sakura_translate.formats.galtransl import NotAScript
from sakura_translate.formats.jsonformats import load_json
from sakura_translate.formats.markdown import MarkdownDocument
from sakura_translate.formats.po import PoCatalog
from sakura_translate.formats.renpy import RenPyScript
from sakura_translate.formats.subtitles import SUBTITLE_FORMATS, SubtitleDocument
from sakura_translate.formats.text import TextDocument
from sakura_translate.formats.webvtt import WebVttDocument
from sakura_translate.formats.xlsx import Spreadsheet

LOADERS: dict[str, Callable[[Path, LoadOptions], Document]] = {
    ".txt": TextDocument.load,
    ".epub": EpubDocument.load,
    ".json": load_json,
    **{suffix: SubtitleDocument.load for suffix in SUBTITLE_FORMATS},
    ".vtt": WebVttDocument.load,  # pysubs2 would drop what a .vtt holds beyond timings and text
    ".md": MarkdownDocument.load,
    ".markdown": MarkdownDocument.load,
    ".po": PoCatalog.load,
    ".rpy": RenPyScript.load,
    ".xlsx": Spreadsheet.load,
    ".trans": load_json,  # Translator++ projects are JSON
}
SUPPORTED_SUFFIXES = tuple(LOADERS)

__all__ = ["SUPPORTED_SUFFIXES", "Document", "LoadOptions", "Translations", "load_document", "load_translatable"]


def load_document(path: Path, options: LoadOptions) -> Document:
    """Parse ``path`` by its suffix; InputError (one line) for a missing, unsupported or unreadable file."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise InputError(
            zh(
                f"{path}: unsupported file type; sakura translate reads {', '.join(SUPPORTED_SUFFIXES)}",
                "不支持的文件类型",
            )
        )
    try:
        return loader(path, options)
    except FileNotFoundError:
        raise InputError(zh(f"{path}: no such file", "找不到文件")) from None
    except IsADirectoryError:
        raise InputError(zh(f"{path}: is a folder, not a file", "这是文件夹，不是文件")) from None
    except PermissionError:
        raise InputError(zh(f"{path}: permission denied", "没有读取权限")) from None


def load_translatable(path: Path, options: LoadOptions) -> Document:
    """``load_document``, and NotAScript (an InputError a folder's run skips) when the file has no text to
    translate."""
    document = load_document(path, options)
    if not any(document.groups):
        raise NotAScript(zh(f"{path}: has no text to translate", "没有需要翻译的文字"))
    return document
