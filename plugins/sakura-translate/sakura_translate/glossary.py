"""Glossaries (术语表) in the three formats users have, and the entries that apply to one chunk.

- SakuraLLM's GPT dictionary: one ``src->dst #note`` (or ``src->dst``) per line.
- GalTransl's dictionary: ``src<TAB>dst<TAB>note`` (the note is optional), ``//`` or ``\\\\`` starting a comment.
- books.fishhawk.top's exported JSON: ``{"src": "dst", ...}``; a JSON list of ``{"src", "dst", "info"}`` objects
  (the GPT-dictionary JSON other tools export) is read too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakura_core.prompts import GlossaryEntry
from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError, zh

_COMMENT_PREFIXES = ("//", "\\\\")
_NOTE_KEYS = ("info", "note", "notes", "comment")


@dataclass
class Glossary:
    """Entries by source term (a later definition of a term replaces an earlier one), in first-seen order."""

    entries: dict[str, GlossaryEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[GlossaryEntry]) -> Glossary:
        glossary = cls()
        for entry in entries:
            glossary.entries[entry.src] = entry
        return glossary

    def __len__(self) -> int:
        return len(self.entries)

    def for_text(self, text: str) -> list[GlossaryEntry]:
        """The entries whose source term occurs in ``text``: only those are sent with a chunk."""
        return [entry for src, entry in self.entries.items() if src in text]

    def lookup(self, term: str) -> str | None:
        """The translation of exactly ``term``, if the glossary has one."""
        entry = self.entries.get(term.strip())
        return entry.dst if entry is not None else None


def load_glossaries(paths: Sequence[Path]) -> Glossary:
    """Read every glossary file, in order; InputError names the file (and line) that does not parse."""
    entries: list[GlossaryEntry] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(zh(f"cannot read glossary {path}: {exc.strerror or exc}", "无法读取术语表")) from None
        text = decode_text(data, path).text
        if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
            entries.extend(parse_json_glossary(text, path))
        else:
            entries.extend(parse_line_glossary(text, path))
    return Glossary.of(entries)


def parse_line_glossary(text: str, path: Path) -> list[GlossaryEntry]:
    """``src->dst #note`` and ``src<TAB>dst<TAB>note`` lines; blank and comment lines are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        if not line.strip() or line.lstrip().startswith(_COMMENT_PREFIXES):
            continue
        if "\t" in line:
            src, dst, *rest = (part.strip() for part in line.split("\t"))
            note = " ".join(part for part in rest if part).lstrip("#").strip() or None
        elif "->" in line:
            src, _, right = line.partition("->")
            dst, _, note_text = right.partition("#")
            src, dst, note = src.strip(), dst.strip(), note_text.strip() or None
        else:
            raise InputError(
                f"{path}:{number}: cannot read glossary line {line.strip()[:40]!r}: "
                "expected 'src->dst #note' or 'src<TAB>dst<TAB>note'"
            )
        if not src or not dst:
            raise InputError(
                zh(
                    f"{path}:{number}: glossary line {line.strip()[:40]!r} has an empty source or translation",
                    "术语表的这一行原文或译文为空",
                )
            )
        entries.append(GlossaryEntry(src=src, dst=dst, info=note))
    return entries


def parse_json_glossary(text: str, path: Path) -> list[GlossaryEntry]:
    """books.fishhawk.top's ``{"src": "dst"}`` object, or a list of ``{"src", "dst", "info"}`` objects."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(zh(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})", "不是有效的 JSON")) from None
    if isinstance(data, dict):
        items: list[Any] = [{"src": src, "dst": dst} for src, dst in data.items()]
    elif isinstance(data, list):
        items = data
    else:
        raise InputError(
            zh(
                f'{path}: a JSON glossary is an object {{"src": "dst"}} or a list of {{src, dst}} objects',
                "JSON 术语表应为对象或 {src, dst} 列表",
            )
        )
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(
                zh(f"{path}: glossary item {index} is not an object with 'src' and 'dst'", "术语表条目缺少 src 和 dst")
            )
        src, dst = item.get("src"), item.get("dst")
        if not isinstance(src, str) or not isinstance(dst, str) or not src.strip() or not dst.strip():
            raise InputError(
                zh(
                    f"{path}: glossary item {index} ({src!r}) needs a non-empty 'src' and 'dst' text",
                    "术语表条目的 src 和 dst 不能为空",
                )
            )
        note = next((item[k] for k in _NOTE_KEYS if isinstance(item.get(k), str) and item[k].strip()), None)
        entries.append(GlossaryEntry(src=src.strip(), dst=dst.strip(), info=note.strip() if note else None))
    return entries
