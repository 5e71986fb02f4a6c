"""Subtitles (.srt, .ass, .ssa, .vtt) through pysubs2: one segment per dialogue event; timings, styles, comments
and drawings kept."""

from __future__ import annotations

import re
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text

SUBTITLE_FORMATS = {".srt": "srt", ".ass": "ass", ".ssa": "ssa", ".vtt": "vtt"}
#: Override blocks at the start of an event (``{\an8}``, ``{\pos(..)\fad(..)}``): kept before the translation.
_LEADING_TAGS = re.compile(r"^(?:\{[^}]*\})+")


class SubtitleDocument(Document):
    """A subtitle file; each event's text (tags removed, its line breaks as spaces) is one segment."""

    kind = "subtitles"

    def __init__(self, path: Path, subs: object, format_: str, encoding: str) -> None:
        import pysubs2

        assert isinstance(subs, pysubs2.SSAFile)
        self.subs = subs
        self.format = format_
        self.originals = [event.text for event in subs.events]
        self.translated_events: list[int] = []
        segments = []
        for index, event in enumerate(subs.events):
            if event.is_comment or event.is_drawing:
                continue
            text = " ".join(event.plaintext.split("\n")).strip()
            if text:
                self.translated_events.append(index)
                segments.append(text)
        super().__init__(path, [segments], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> SubtitleDocument:
        import pysubs2

        format_ = SUBTITLE_FORMATS[path.suffix.lower()]
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        try:
            subs = pysubs2.SSAFile.from_string(decoded.text, format_=format_)
        except Exception as exc:  # pysubs2 raises several kinds for a broken file
            raise InputError(f"{path}: not a readable {format_} subtitle file ({exc})") from None
        _check_timings(decoded.text, format_, path)
        if not subs.events:
            raise InputError(f"{path}: no subtitle events found in this {format_} file")
        return cls(path, subs, format_, decoded.encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        events = self.subs.events
        try:
            for event, original in zip(events, self.originals, strict=True):
                event.text = original
            for index, translation in zip(self.translated_events, translated, strict=True):
                text = convert(merged_text(translation)).replace("\n", r"\N")
                original = self.originals[index]
                if bilingual:
                    events[index].text = f"{original}\\N{text}" if text else original
                else:
                    match = _LEADING_TAGS.match(original)
                    events[index].text = (match.group(0) if match else "") + text
            return self.subs.to_string(self.format).encode("utf-8")
        finally:
            for event, original in zip(events, self.originals, strict=True):
                event.text = original


#: How a timing line is written, for the message about one that does not parse.
_TIMING_EXAMPLES = {"srt": "00:01:02,345 --> 00:01:04,000", "vtt": "00:01:02.345 --> 00:01:04.000"}


def _check_timings(text: str, format_: str, path: Path) -> None:
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
                f"{path}:{number}: timing line {line.strip()!r} does not parse; write it as {_TIMING_EXAMPLES[format_]}"
            )
