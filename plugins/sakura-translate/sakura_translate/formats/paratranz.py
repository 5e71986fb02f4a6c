"""Paratranz's JSON: a list of ``{"key", "original", "translation", "stage"?, "context"?}`` entries. The original
is sent; the translation is written in its ``translation`` field (added after ``original`` where missing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sakura_translate.formats.base import Convert, Translations
from sakura_translate.formats.jsondoc import JsonStringsDocument
from sakura_translate.formats.jsonspans import JsonText


class ParatranzFile(JsonStringsDocument):
    """A Paratranz JSON file."""

    kind = "Paratranz file"

    @staticmethod
    def sniff(value: Any) -> bool:
        """Whether a parsed JSON value is a Paratranz export: a list of objects with a text ``original``."""
        return (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(item, dict) and isinstance(item.get("original"), str) for item in value)
        )

    @classmethod
    def from_json(cls, path: Path, json_text: JsonText, encoding: str) -> ParatranzFile:
        targets = [
            ((index, "translation"), item["original"])
            for index, item in enumerate(json_text.value)
            if item["original"].strip()
        ]
        return cls(path, json_text, targets, encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        if all(target in self.json_text.spans for target, _ in self.targets):
            return super().render(translations, bilingual=bilingual, convert=convert)
        # Some entry has no text translation field to edit in place: the list is written again, two-space indented.
        items = json.loads(self.json_text.text)
        for (index, _), text in self.texts(translations, bilingual=bilingual, convert=convert).items():
            assert isinstance(index, int)
            items[index]["translation"] = text
        return (json.dumps(items, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
