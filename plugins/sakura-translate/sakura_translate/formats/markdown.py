"""Markdown: one segment per line of prose. Front matter, fenced and indented code, HTML lines, link reference
definitions and lines without letters are kept as they are; a line's prefix (heading marks, list markers, quote
marks, indentation) is kept and only its text is sent. Inline code and link targets are restored from the source
in order; a translation that lost or added some keeps the source line (and is listed in the report)."""

from __future__ import annotations

import re
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations
from sakura_translate.formats.lines import LineLayout

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)*(?:#{1,6}[ \t]+|[-*+][ \t]+(?:\[[ xX]\][ \t]+)?|\d{1,9}[.)][ \t]+)?")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s")
#: Inline code spans and link or image targets: what the model must not change.
_PROTECTED = re.compile(r"(`+)[^`]*?\1|\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_LETTER = re.compile(r"[^\W\d_]")


def protected(text: str) -> list[str]:
    """The inline code spans and link targets of ``text``, in order."""
    return [match.group(0) for match in _PROTECTED.finditer(text)]


class MarkdownDocument(Document):
    """A Markdown file in any common encoding, written as UTF-8 with its line ends."""

    kind = "Markdown"

    def __init__(self, path: Path, text: str, encoding: str) -> None:
        self.lines, self.layout = LineLayout.split(text)
        #: Line number → (prefix kept, text sent).
        self.prose: dict[int, tuple[str, str]] = {}
        self.altered: list[int] = []
        fence: str | None = None
        front = self.lines[:1] in (["---"], ["+++"])
        for number, line in enumerate(self.lines):
            if front:
                if number > 0 and line == self.lines[0]:
                    front = False
                continue
            opening = _FENCE.match(line)
            if fence is not None:
                if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                    fence = None
                continue
            if opening:
                fence = opening.group(1)
                continue
            if line.startswith(("    ", "\t")) and (number == 0 or not self.lines[number - 1].strip()):
                continue  # indented code (a list's continuation follows a non-blank line)
            if line.lstrip().startswith("<") or _REFERENCE.match(line) or not _LETTER.search(line):
                continue
            prefix = _PREFIX.match(line).group(0)  # type: ignore[union-attr]
            body = line[len(prefix) :]
            if _LETTER.search(body):
                self.prose[number] = (prefix, body)
        super().__init__(path, [[body for _, body in self.prose.values()]], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> MarkdownDocument:
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        return cls(path, decoded.text, decoded.encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        by_line = dict(zip(self.prose, translated, strict=True))
        self.altered = []
        out: list[str] = []
        for number, line in enumerate(self.lines):
            if number not in by_line:
                out.append(line)
                continue
            prefix, body = self.prose[number]
            translation = by_line[number]
            if translation is None:
                continue
            text = _restore(convert(translation.replace("\n", " ")), body)
            if text is None:
                self.altered.append(number + 1)
                text = body
            if bilingual:
                out.extend([line, ""])
            out.append(prefix + text)
        text = self.layout.join(out)
        return text.encode("utf-8")

    def notes(self) -> list[str]:
        if not self.altered:
            return []
        shown = ", ".join(map(str, self.altered[:10]))
        return [f"lines whose inline code or links the translation changed, kept in Japanese: {shown}"]


def _restore(translation: str, source: str) -> str | None:
    """``translation`` with the source's code spans and link targets put back in order; None when it has not as
    many as the source."""
    wanted = protected(source)
    found = list(_PROTECTED.finditer(translation))
    if len(found) != len(wanted):
        return None
    pieces = iter(wanted)
    return _PROTECTED.sub(lambda _: next(pieces), translation)
