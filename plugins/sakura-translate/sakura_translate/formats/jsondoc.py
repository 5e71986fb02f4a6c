"""JSON files whose strings are translated in place: the base of MTool, Paratranz and RPG Maker data files.

A segment is one string; a line break inside it is sent as a literal ``\\n`` (two characters) and restored in the
translation. Only the strings written change: everything else of the file stays byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sakura_translate.formats.base import Convert, Document, Translations, merged_text
from sakura_translate.formats.jsonspans import JsonPath, JsonText

ESCAPED_NEWLINE = "\\n"


def one_line(text: str) -> str:
    """``text`` as one segment: its line breaks written as a literal ``\\n``."""
    return text.replace("\r\n", ESCAPED_NEWLINE).replace("\n", ESCAPED_NEWLINE)


def restore_lines(translation: str, source: str) -> str:
    """A translation's line breaks (real or a literal ``\\n``) written as the source writes them."""
    newline = "\r\n" if "\r\n" in source else "\n"
    return translation.replace("\r\n", "\n").replace(ESCAPED_NEWLINE, "\n").replace("\n", newline)


class JsonStringsDocument(Document):
    """A JSON file with one segment per string to translate: ``targets`` pairs where the translation is written
    with the source text sent for it (often the same path; MTool and Paratranz write beside the source)."""

    def __init__(self, path: Path, json_text: JsonText, targets: Sequence[tuple[JsonPath, str]], encoding: str) -> None:
        self.json_text = json_text
        self.targets = targets
        super().__init__(path, [[one_line(source) for _, source in targets]], encoding)

    def texts(
        self, translations: Translations, *, bilingual: bool = False, convert: Convert = str
    ) -> dict[JsonPath, str]:
        """What each target path gets."""
        (translated,) = translations
        replacements: dict[JsonPath, str] = {}
        for (target, source), translation in zip(self.targets, translated, strict=True):
            text = restore_lines(convert(merged_text(translation)), source)
            if bilingual:
                newline = "\r\n" if "\r\n" in source else "\n"
                text = f"{source}{newline}{text}" if text else source
            replacements[target] = text
        return replacements

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        texts = self.texts(translations, bilingual=bilingual, convert=convert)
        return self.json_text.edited(texts).encode("utf-8")
