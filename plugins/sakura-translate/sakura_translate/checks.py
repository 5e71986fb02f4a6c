"""The checks every translated chunk and line goes through, whatever the format and the backend.

A chunk is checked as a whole (its line count; whether the reply ran into ``max_tokens``), then line by line
against its source line: kana left, hangul, a repeated n-gram run (degeneration), untranslated text, glossary terms
not applied, control codes or markup lost or altered. ``sakura_translate.pipeline`` turns a failed check into its
cascade (a retry with a higher frequency penalty, then smaller pieces, then the source line kept and flagged).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sakura_core.prompts import GlossaryEntry


class Reason(StrEnum):
    """Why a line was flagged; the names appear in the report and in ``--no-check``."""

    LINE_COUNT = "line_count"
    KANA = "kana"
    HANGUL = "hangul"
    DEGENERATION = "degeneration"
    UNTRANSLATED = "untranslated"
    GLOSSARY = "glossary"
    MARKUP = "markup"
    CONTEXT_OVERFLOW = "context_overflow"


#: Checks a user may turn off (the line count and a context overflow cannot be: structure depends on them).
OPTIONAL_CHECKS = (
    Reason.KANA,
    Reason.HANGUL,
    Reason.DEGENERATION,
    Reason.UNTRANSLATED,
    Reason.GLOSSARY,
    Reason.MARKUP,
)

# Hiragana and katakana, full and half width; the prolonged sound mark and the middle dot are left out, as
# Chinese uses them too (外国人名 such as 约翰・史密斯).
_KANA = re.compile(r"[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fd\u30fe\uff66-\uff9d]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LETTERS = re.compile(r"\w")
# Control codes and markup that must come back unchanged: RPG Maker / KiriKiri codes (\C[3], \V[1], \n as two
# characters), ASS override blocks ({\i1}), HTML-like tags (<i>, </font>), printf-style fields (%s, %1).
_MARKUP = re.compile(
    r"\\[A-Za-z]+\[[^\]\n]*\]|\{\\[^}\n]*\}|</?[A-Za-z][^<>\n]*>|\\[A-Za-z]+|\\[{}.|!<>^$]|%(?:\d+|[sd])"
)
# A unit of 1-12 characters repeated at least four more times in a row.
_REPEAT = re.compile(r"(.{1,12}?)\1{4,}", re.DOTALL)


@dataclass(frozen=True)
class CheckSettings:
    """Which checks run and their thresholds (part of a chunk's cache key when they differ from the defaults)."""

    #: Flag a line when more than this share of its letters is kana (0: any kana left).
    kana_threshold: float = 0.0
    #: Flag a repeated run covering at least this many characters that the source does not have.
    repeat_chars: int = 20
    disabled: frozenset[Reason] = field(default_factory=frozenset)

    def enabled(self, reason: Reason) -> bool:
        return reason not in self.disabled

    def key(self) -> dict[str, object] | None:
        """What the cache key records of these settings: None for the defaults (keys made before checks existed
        stay valid)."""
        if self == CheckSettings():
            return None
        return {
            "kana_threshold": self.kana_threshold,
            "repeat_chars": self.repeat_chars,
            "disabled": sorted(self.disabled),
        }


def kana_share(text: str, glossary: Sequence[GlossaryEntry] = (), names: Sequence[str] = ()) -> float:
    """The share of ``text``'s letters that are kana, glossary terms and ``names`` (kept as they are) removed
    first."""
    terms = [term for entry in glossary for term in (entry.src, entry.dst)] + list(names)
    for term in sorted(terms, key=len, reverse=True):  # the longest first: a short term inside a long one
        if term:
            text = text.replace(term, "")
    letters = len(_LETTERS.findall(text))
    return len(_KANA.findall(text)) / letters if letters else 0.0


def longest_repeat(text: str) -> int:
    """How many characters the longest run of one repeated unit covers (0 when nothing repeats 5 times)."""
    return max((len(match.group(0)) for match in _REPEAT.finditer(text)), default=0)


def markup(text: str) -> Counter[str]:
    """The control codes and markup of ``text``, counted."""
    return Counter(_MARKUP.findall(text))


def has_kana(text: str) -> bool:
    return _KANA.search(text) is not None


def check_line(
    source: str,
    output: str,
    glossary: Sequence[GlossaryEntry],
    settings: CheckSettings,
    names: Sequence[str] = (),
) -> list[Reason]:
    """What is wrong with ``output`` as the translation of ``source`` (empty: nothing). ``names`` are kept as they
    are (a script's speakers without a glossary entry): their kana do not count."""
    reasons: list[Reason] = []
    on = settings.enabled
    if on(Reason.KANA) and kana_share(output, glossary, names) > settings.kana_threshold:
        reasons.append(Reason.KANA)
    if on(Reason.HANGUL) and _HANGUL.search(output) and not _HANGUL.search(source):
        reasons.append(Reason.HANGUL)
    if on(Reason.DEGENERATION):
        repeated = longest_repeat(output)
        if repeated >= settings.repeat_chars and repeated > 2 * longest_repeat(source):
            reasons.append(Reason.DEGENERATION)
    # only a source with kana is surely Japanese: kanji-only lines ("第一章") and names may come back unchanged
    stripped = source.strip()
    if on(Reason.UNTRANSLATED) and has_kana(stripped) and stripped in output:
        reasons.append(Reason.UNTRANSLATED)
    if on(Reason.GLOSSARY) and any(entry.src in source and entry.dst and entry.dst not in output for entry in glossary):
        reasons.append(Reason.GLOSSARY)
    if on(Reason.MARKUP) and markup(source) != markup(output):
        reasons.append(Reason.MARKUP)
    return reasons


def check_chunk(
    sources: Sequence[str],
    outputs: Sequence[str],
    *,
    reached_max_tokens: bool,
    glossary: Sequence[GlossaryEntry],
    settings: CheckSettings,
    names: Sequence[str] = (),
) -> dict[int, list[Reason]]:
    """The failed checks of a chunk's reply, by line index (every line for a chunk-wide failure); empty: all pass."""
    everywhere: list[Reason] = []
    if len(outputs) != len(sources):
        everywhere.append(Reason.LINE_COUNT)
    if reached_max_tokens and settings.enabled(Reason.DEGENERATION):
        everywhere.append(Reason.DEGENERATION)
    if everywhere:
        return {index: list(everywhere) for index in range(len(sources))}
    failed = {}
    for index, (source, output) in enumerate(zip(sources, outputs, strict=True)):
        entries = [entry for entry in glossary if entry.src in source]
        reasons = check_line(source, output, entries, settings, [name for name in names if name in source])
        if reasons:
            failed[index] = reasons
    return failed
