"""WebVTT subtitles, kept as written: the header, NOTE, STYLE and REGION blocks, cue identifiers, timings with
their settings (``align:``, ``position:``, ``line:``, ``size:``) stay byte for byte; only cue text is translated.

pysubs2 reads a .vtt as SubStation events and writes it back without those, so this format edits the file's own
text instead. A cue's text is one segment: its lines joined with ``\\N`` (as ASS writes a line break), a voice
tag around it (``<v Speaker>`` … ``</v>``) kept aside, other tags (``<i>``, ``<b>``) sent and checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text
from sakura_translate.formats.subtitles import check_timings

LINE_BREAK = "\\N"
_NEWLINES = re.compile(r"\r\n|\r|\n")
#: The blank lines between blocks (captured: written back as they were).
_BLOCK_GAP = re.compile(r"(\n(?:[ \t]*\n)+)")
_LEADING_TAGS = re.compile(r"^(?:<[^<>\n]*>)+")
_TRAILING_TAGS = re.compile(r"(?:</[^<>\n]*>)+$")
_TAGS = re.compile(r"<[^<>\n]*>")


@dataclass
class Cue:
    """A cue block: the lines before its text (identifier, timing) and its text lines."""

    head: list[str]
    text: list[str]


Block = str | Cue


class WebVttDocument(Document):
    """A ``.vtt`` file."""

    kind = "subtitles"

    def __init__(self, path: Path, text: str, encoding: str) -> None:
        self.newline = "\r\n" if "\r\n" in text else "\n"
        normalized = _NEWLINES.sub("\n", text)
        self.trailing = normalized[len(normalized.rstrip("\n")) :]
        self.blocks: list[Block] = []
        #: Per translated cue: the tags kept before and after its text.
        self.frames: list[tuple[str, str]] = []
        self._translated: list[Cue] = []
        segments = []
        parts = _BLOCK_GAP.split(normalized.rstrip("\n"))
        self.gaps = parts[1::2]
        for block in parts[::2]:
            lines = block.split("\n")
            timing = next((n for n, line in enumerate(lines) if "-->" in line), None)
            if timing is None or lines[0].startswith(("WEBVTT", "NOTE", "STYLE", "REGION")):
                self.blocks.append(block)
                continue
            cue = Cue(lines[: timing + 1], lines[timing + 1 :])
            self.blocks.append(cue)
            joined = LINE_BREAK.join(cue.text)
            lead = _LEADING_TAGS.match(joined)
            head = lead.group(0) if lead else ""
            trail = _TRAILING_TAGS.search(joined[len(head) :])
            tail = trail.group(0) if trail else ""
            body = joined[len(head) : len(joined) - len(tail)]
            if _TAGS.sub("", body).replace(LINE_BREAK, "").strip():  # a cue of tags alone is kept as it is
                self._translated.append(cue)
                self.frames.append((head, tail))
                segments.append(body)
        super().__init__(path, [segments], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> WebVttDocument:
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        if not decoded.text.lstrip().startswith("WEBVTT"):
            raise InputError(
                zh(f"{path}: not a WebVTT file (it must begin with WEBVTT)", "不是 WebVTT 文件（应以 WEBVTT 开头）")
            )
        check_timings(decoded.text, "vtt", path)
        return cls(path, decoded.text, decoded.encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        replaced = {
            id(cue): (head, convert(merged_text(translation)), tail)
            for cue, translation, (head, tail) in zip(self._translated, translated, self.frames, strict=True)
        }
        out = []
        for block in self.blocks:
            if isinstance(block, str):
                out.append(block)
                continue
            lines = list(block.head)
            if id(block) in replaced:
                head, text, tail = replaced[id(block)]
                text = text.replace("\n", LINE_BREAK)
                if bilingual:
                    lines += block.text
                    lines += text.split(LINE_BREAK)
                else:
                    lines += (head + text + tail).split(LINE_BREAK)
            else:
                lines += block.text
            out.append("\n".join(lines))
        text = "".join(block + gap for block, gap in zip(out, [*self.gaps, ""], strict=True)) + self.trailing
        return text.replace("\n", self.newline).encode("utf-8")
