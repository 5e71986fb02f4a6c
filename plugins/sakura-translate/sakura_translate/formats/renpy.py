"""Ren'Py scripts: translation files (``translate chinese ID:`` blocks and ``translate chinese strings:``'s
``old``/``new`` pairs) and the dialogue of plain script files.

In a translation file, a dialogue block's source is its comment (``# e "…"``) and the translation goes into the
statement under it; a strings block's ``old`` is sent and its ``new`` written. In a script file, say statements
(``e "…"``, ``"Name" "…"``), narration (``"…"``) and menu choices (``"…":``) are translated in place. Only the text
between the quotes changes: indentation, speakers, ``with`` clauses and comments stay byte for byte. Text is sent as
written (escapes such as ``\\n`` and ``\\"`` included); a translation whose text tags (``{i}``, ``{/i}``) or
interpolations (``[name]``) differ from the source's is written as the source and counted in the report.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text

_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
_STRING = r'"((?:[^"\\]|\\.)*)"'
_TRANSLATE = re.compile(r"^translate\s+\w+\s+(\w+)\s*:\s*$")
_COMMENTED_SAY = re.compile(
    r'^\s*#\s*(?:[A-Za-z_]\w*(?:\s+[A-Za-z_]\w*)*\s+|"(?:[^"\\]|\\.)*"\s+)?' + _STRING + r"(?:\s+.*)?$"
)
_OLD = re.compile(r"^\s*old\s+" + _STRING + r"\s*$")
_NEW = re.compile(r"^(\s*new\s+)" + _STRING + r"\s*$")
#: A say statement, narration or menu choice: optional speaker (and attributes), the string, an optional tail.
_SAY = re.compile(
    r'^(\s*(?:(?P<who>[A-Za-z_]\w*)(?:\s+[A-Za-z_]\w*)*\s+|"(?:[^"\\]|\\.)*"\s+)?)'
    + r'"(?P<text>(?:[^"\\]|\\.)*)"'
    + r"(\s*(?:(?:with|nointeract|id)\b[^\"#]*|if\b[^\"#]*:|:)?\s*(?:#.*)?)$"
)
#: Statements whose first word is no speaker.
_KEYWORDS = frozenset(
    "define default label jump call show hide scene play stop queue voice image init python screen style transform "
    "return if elif else while for pass window with pause menu translate old new text textbutton action key use "
    "add style_prefix config renpy".split()
)
_TAGS = re.compile(r"\{\{|\[\[|\{[^{}]*\}|\[[^\[\]]*\]")


def tags(text: str) -> Counter[str]:
    """The text tags and interpolations of a Ren'Py string."""
    return Counter(tag for tag in _TAGS.findall(text) if tag not in ("{{", "[["))


@dataclass(frozen=True)
class Edit:
    """A string to translate: the line it is written on, where its text lies in that line, and the text sent."""

    line: int
    start: int
    end: int
    source: str


def _say(line: str, number: int) -> Edit | None:
    match = _SAY.match(line)
    if match is None or (match.group("who") or "") in _KEYWORDS or match.group(1).lstrip().startswith("#"):
        return None
    return Edit(number, match.start("text"), match.end("text"), match.group("text"))


class RenPyScript(Document):
    """A ``.rpy`` file: a translation file when it has ``translate`` blocks, else a script's dialogue."""

    kind = "Ren'Py script"

    def __init__(self, path: Path, text: str, encoding: str) -> None:
        parts = _LINE_BREAK.split(text)
        self.lines, self.breaks = parts[0::2], parts[1::2]
        self.bom = ""
        if self.lines and self.lines[0].startswith("\ufeff"):
            self.bom, self.lines[0] = "\ufeff", self.lines[0][1:]
        self.edits = self._translation_edits() if any(_TRANSLATE.match(ln) for ln in self.lines) else self._say_edits()
        self.tags_altered = 0
        super().__init__(path, [[edit.source for edit in self.edits]], encoding)

    def _say_edits(self) -> list[Edit]:
        return [edit for number, line in enumerate(self.lines) if (edit := _say(line, number)) is not None]

    def _translation_edits(self) -> list[Edit]:
        edits = []
        block: str | None = None
        source: str | None = None
        for number, line in enumerate(self.lines):
            header = _TRANSLATE.match(line)
            if header:
                block, source = header.group(1), None
                continue
            if block is None or not line.strip():
                continue
            if block == "strings":
                if old := _OLD.match(line):
                    source = old.group(1)
                elif (new := _NEW.match(line)) and source is not None:
                    edits.append(Edit(number, new.start(2), new.end(2), source))
                    source = None
            elif block != "python" and (comment := _COMMENTED_SAY.match(line)):
                source = comment.group(1)
            elif source is not None and (say := _say(line, number)) is not None:
                edits.append(Edit(number, say.start, say.end, source))
                source = None
        return edits

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> RenPyScript:
        data = path.read_bytes()
        decoded = decode_text(data, path, options.encoding)
        text = decoded.text
        if data.startswith(b"\xef\xbb\xbf") and not text.startswith("\ufeff"):
            text = "\ufeff" + text  # Ren'Py writes its translation files with a BOM: kept
        return cls(path, text, decoded.encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        lines = list(self.lines)
        self.tags_altered = 0
        for edit, translation in sorted(
            zip(self.edits, translated, strict=True), key=lambda pair: (pair[0].line, -pair[0].start)
        ):
            text = _escape(convert(merged_text(translation)).replace("\n", "\\n"))
            if tags(text) != tags(edit.source):
                text = edit.source
                self.tags_altered += 1
            if bilingual and text != edit.source:
                text = f"{edit.source}\\n{text}"
            line = lines[edit.line]
            lines[edit.line] = line[: edit.start] + text + line[edit.end :]
        out = [self.bom]
        for number, line in enumerate(lines):
            out.append(line)
            if number < len(self.breaks):
                out.append(self.breaks[number])
        return "".join(out).encode("utf-8")

    def notes(self) -> list[str]:
        if not self.tags_altered:
            return []
        return [f"{self.tags_altered} lines kept in Japanese: their translation altered text tags or [names]"]


def _escape(text: str) -> str:
    """``text`` safe between double quotes: a quote not already escaped gets a backslash."""
    return re.sub(r'(?<!\\)((?:\\\\)*)"', r'\1\\"', text)
