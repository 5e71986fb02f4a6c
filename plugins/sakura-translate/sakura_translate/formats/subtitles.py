"""Subtitles (.srt, .ass, .ssa, .vtt) through pysubs2: one segment per dialogue event; timings, styles, comments
and drawings kept."""

from __future__ import annotations

import re
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text

SUBTITLE_FORMATS = {".srt": "srt", ".ass": "ass", ".ssa": "ssa", ".vtt": "vtt"}
#: Override blocks at the start of an event (``{\an8}``, ``{\pos(..)\fad(..)}``): kept before the translation;
#: those at its end (``{\i0}`` closing a cue in italics) after it.
_LEADING_TAGS = re.compile(r"^(?:\{[^}]*\})+")
_TRAILING_TAGS = re.compile(r"(?:\{[^}]*\})+$")
#: Karaoke timing tags (\k, \K, \kf, \ko): such a line is kept as it is.
_KARAOKE = re.compile(r"\{[^}]*\\(?:k|K|kf|ko)\d")
#: What is no text: override blocks and ASS's line-break and space codes.
_PLAIN = re.compile(r"\{[^}]*\}|\\[Nnh]")


class SubtitleDocument(Document):
    """A subtitle file; each event's text is one segment: override blocks at its start and end kept aside, tags
    inside it and its line breaks (``\\N``) sent as they are. Comments, drawings and karaoke lines are kept."""

    kind = "subtitles"

    def __init__(self, path: Path, subs: object, format_: str, encoding: str, text: str = "") -> None:
        import pysubs2

        assert isinstance(subs, pysubs2.SSAFile)
        self.subs = subs
        self.format = format_
        self.originals = [event.text for event in subs.events]
        self.translated_events: list[int] = []
        #: Per translated event: the override blocks before and after its text, kept around the translation.
        self.frames: list[tuple[str, str]] = []
        self.header_comments = _header_comments(text) if format_ in ("ass", "ssa") else []
        segments = []
        for index, event in enumerate(subs.events):
            if event.is_comment or event.is_drawing or _KARAOKE.search(event.text):
                continue  # karaoke timing belongs to each syllable: a translation cannot keep it
            lead = _LEADING_TAGS.match(event.text)
            head = lead.group(0) if lead else ""
            rest = event.text[len(head) :]
            trail = _TRAILING_TAGS.search(rest)
            tail = trail.group(0) if trail else ""
            # mid-line tags ({\i1}…{\i0}, a colour) and line breaks (\N) are sent as they are: the markup check
            # makes sure they come back
            body = rest[: len(rest) - len(tail)].strip()
            if _PLAIN.sub("", body).strip():
                self.translated_events.append(index)
                self.frames.append((head, tail))
                segments.append(body)
        super().__init__(path, [segments], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> SubtitleDocument:
        import pysubs2

        format_ = SUBTITLE_FORMATS[path.suffix.lower()]
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        try:
            subs = pysubs2.SSAFile.from_string(decoded.text, format_=format_)
        except Exception as exc:  # pysubs2 raises several kinds for a broken file
            raise InputError(
                zh(f"{path}: not a readable {format_} subtitle file ({exc})", "无法读取的字幕文件")
            ) from None
        check_timings(decoded.text, format_, path)
        if not subs.events:
            raise InputError(zh(f"{path}: no subtitle events found in this {format_} file", "字幕文件里没有字幕"))
        return cls(path, subs, format_, decoded.encoding, decoded.text)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        events = self.subs.events
        try:
            for event, original in zip(events, self.originals, strict=True):
                event.text = original
            for index, translation, (head, tail) in zip(self.translated_events, translated, self.frames, strict=True):
                text = convert(merged_text(translation)).replace("\n", r"\N")
                original = self.originals[index]
                if bilingual:
                    events[index].text = f"{original}\\N{text}" if text else original
                else:
                    events[index].text = head + text + tail
            rendered = self.subs.to_string(self.format)
            if self.format in ("ass", "ssa"):
                rendered = _restore_header_comments(rendered, self.header_comments)
            return rendered.encode("utf-8")
        finally:
            for event, original in zip(events, self.originals, strict=True):
                event.text = original


#: How a timing line is written, for the message about one that does not parse.
_TIMING_EXAMPLES = {"srt": "00:01:02,345 --> 00:01:04,000", "vtt": "00:01:02.345 --> 00:01:04.000"}


def check_timings(text: str, format_: str, path: Path) -> None:
    """InputError for the first SRT/WebVTT timing line pysubs2 would not read: it would skip the cue, or join it
    to the one before (text, timing line and all)."""
    if format_ not in _TIMING_EXAMPLES:
        return
    from pysubs2.formats.subrip import SubripFormat
    from pysubs2.formats.webvtt import WebVTTFormat

    stamp = SubripFormat.TIMESTAMP if format_ == "srt" else WebVTTFormat.TIMESTAMP
    for number, line in enumerate(text.splitlines(), start=1):
        if "-->" in line and len(stamp.findall(line)) != 2:
            raise InputError(
                zh(
                    f"{path}:{number}: timing line {line.strip()!r} does not parse; "
                    f"write it as {_TIMING_EXAMPLES[format_]}",
                    "这一行的时间轴格式不对",
                )
            )


def _header_comments(text: str) -> list[str]:
    """The comment lines (``; Script generated by Aegisub``) of an ASS file's [Script Info] section."""
    comments = []
    in_info = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_info = stripped.lower() == "[script info]"
        elif in_info and stripped.startswith(";"):
            comments.append(stripped)
    return comments


def _restore_header_comments(rendered: str, comments: list[str]) -> str:
    """``rendered`` with pysubs2's own header comments replaced by the original file's."""
    lines = rendered.split("\n")
    start = 1 if lines and lines[0].strip().lower() == "[script info]" else 0
    end = start
    while end < len(lines) and lines[end].startswith(";"):
        end += 1
    return "\n".join(lines[:start] + comments + lines[end:])
