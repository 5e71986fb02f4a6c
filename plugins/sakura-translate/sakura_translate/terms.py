"""Candidate glossary terms in Japanese text: katakana runs, names before honorifics, repeated kanji compounds.

Each term is counted over the whole text (every occurrence, not only where it was found), kept when it occurs at
least ``min_count`` times, and sorted by count (most first), then by first appearance; each has the first line it
appears in as an example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel

#: Three or more katakana (the prolonged sound mark and the middle dot inside a run: フォン・アイゼン).
_KATAKANA = re.compile(r"[ァ-ヺ][ァ-ヺー・]{2,}")
_HONORIFICS = "さん|さま|様|くん|君|ちゃん|殿|先輩|先生|師匠|氏|嬢"
#: A name (kanji or katakana, up to six characters) right before an honorific.
_NAMED = re.compile(rf"([\u4e00-\u9fff々ァ-ヺー]{{1,6}}?)(?:{_HONORIFICS})")
#: A run of two to six kanji.
_KANJI = re.compile(r"[\u4e00-\u9fff々]{2,6}")


class TermKind(StrEnum):
    """How a term was found."""

    KATAKANA = "katakana"
    NAME = "name"
    KANJI = "kanji"


class Term(BaseModel):
    """A candidate term, how often it occurs, and the first line it occurs in."""

    text: str
    kind: TermKind
    count: int
    example: str
    translation: str | None = None


def extract_terms(lines: Iterable[str], min_count: int = 3, limit: int | None = None) -> list[Term]:
    """The candidate terms of ``lines`` occurring at least ``min_count`` times, most frequent first."""
    lines = [line for line in lines if line.strip()]
    found: dict[str, TermKind] = {}
    for line in lines:
        for match in _NAMED.finditer(line):
            name = match.group(1)
            if len(name) >= 2 or re.fullmatch(r"[\u4e00-\u9fff]", name):
                found.setdefault(name, TermKind.NAME)
        for match in _KATAKANA.finditer(line):
            found.setdefault(match.group(0).strip("・"), TermKind.KATAKANA)
        for match in _KANJI.finditer(line):
            found.setdefault(match.group(0), TermKind.KANJI)
    text = "\n".join(lines)
    terms = []
    for term, kind in found.items():
        count = text.count(term)
        if count < min_count:
            continue
        example = next(line for line in lines if term in line)
        terms.append((text.index(term), Term(text=term, kind=kind, count=count, example=example.strip())))
    # a kanji run that is only ever part of a longer candidate (田中太郎's 田中太) is no term of its own
    kept = [
        term
        for _, term in terms
        if term.kind is not TermKind.KANJI
        or not any(
            other.text != term.text and term.text in other.text and other.count == term.count for _, other in terms
        )
    ]
    order = {term.text: position for position, term in terms}
    kept.sort(key=lambda term: (-term.count, order[term.text]))
    return kept[:limit] if limit is not None else kept


def glossary_text(terms: list[Term], style: str) -> str:
    """``terms`` as a glossary ``sakura translate --glossary`` reads: ``txt`` (``src->dst #note``), ``tsv``
    (``src<TAB>dst<TAB>note``) or ``json`` (a list of ``{src, dst, info}``). A term not translated keeps its
    source as its translation, for the user to correct."""
    import json

    def note(term: Term) -> str:
        return f"{term.kind.value} ×{term.count}: {term.example[:60]}".replace("\t", " ").replace("#", "＃")

    if style == "json":
        items = [{"src": t.text, "dst": t.translation or t.text, "info": note(t)} for t in terms]
        return json.dumps(items, ensure_ascii=False, indent=2) + "\n"
    if style == "tsv":
        return "".join(f"{t.text}\t{t.translation or t.text}\t{note(t)}\n" for t in terms)
    return "".join(f"{t.text}->{t.translation or t.text} #{note(t)}\n" for t in terms)
