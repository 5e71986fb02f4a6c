"""Plain-text novels: one segment per non-blank line; blank lines, indentation and line endings kept."""

from __future__ import annotations

import re
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.formats.base import INDENT_CHARS, Convert, Document, LoadOptions, Translations
from sakura_translate.formats.lines import LineLayout

# Web-novel ruby (小説家になろう, カクヨム): ｜漢字《かんじ》 marks its base with a bar; 漢字《かんじ》 without one
# annotates the kanji run before it. The reading is dropped before sending: the model translates the base.
_BAR_RUBY = re.compile(r"[|｜]([^|｜《》\r\n]+)《[^《》\r\n]*》")
_KANJI_RUBY = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヶ]+)《[^《》\r\n]*》")


def strip_ruby(line: str) -> str:
    """``line`` with web-novel ruby readings removed, its bases kept."""
    return _KANJI_RUBY.sub(r"\1", _BAR_RUBY.sub(r"\1", line))


class TextDocument(Document):
    """A ``.txt`` file in any common Japanese encoding; the translation is written as UTF-8."""

    kind = "text"

    def __init__(self, path: Path, text: str, encoding: str) -> None:
        self.lines, self.layout = LineLayout.split(text)
        self.indents: dict[int, str] = {}
        segments = []
        for number, line in enumerate(self.lines):
            body = line.strip(INDENT_CHARS)
            if body:
                self.indents[number] = line[: len(line) - len(line.lstrip(INDENT_CHARS))]
                segments.append(strip_ruby(body))
        super().__init__(path, [segments], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> TextDocument:
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        return cls(path, decoded.text, decoded.encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        out: list[str] = []
        segment = 0
        for number, line in enumerate(self.lines):
            if number not in self.indents:
                out.append(line)
                continue
            translation = translated[segment]
            segment += 1
            if bilingual:
                out.append(line)
            if translation is None:
                continue
            indent = self.indents[number]
            out.extend(indent + convert(part).lstrip(INDENT_CHARS) for part in translation.split("\n"))
        text = self.layout.join(out)
        return text.encode("utf-8")
