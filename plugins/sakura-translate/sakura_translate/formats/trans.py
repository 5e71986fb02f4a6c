"""Translator++ projects (``.trans``): JSON whose ``project.files`` maps each game file to its ``data`` rows, each
row ``[original, translation, …]``. The original is sent and the first translation column written (a ``null`` or
a missing column filled in); tags, context and everything else are kept, edited in place where the row has a
translation column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sakura_translate.formats.base import Convert, Translations
from sakura_translate.formats.jsondoc import JsonStringsDocument
from sakura_translate.formats.jsonspans import JsonPath, JsonText


class TransProject(JsonStringsDocument):
    """A Translator++ project file."""

    kind = "Translator++ project"

    @staticmethod
    def sniff(value: Any) -> bool:
        """Whether a parsed JSON value is a Translator++ project."""
        project = value.get("project") if isinstance(value, dict) else None
        return isinstance(project, dict) and isinstance(project.get("files"), dict)

    @classmethod
    def from_json(cls, path: Path, json_text: JsonText, encoding: str) -> TransProject:
        targets: list[tuple[JsonPath, str]] = []
        for name, entry in json_text.value["project"]["files"].items():
            rows = entry.get("data") if isinstance(entry, dict) else None
            for index, row in enumerate(rows if isinstance(rows, list) else []):
                if isinstance(row, list) and row and isinstance(row[0], str) and row[0].strip():
                    targets.append((("project", "files", name, "data", index, 1), row[0]))
        return cls(path, json_text, targets, encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        texts = self.texts(translations, bilingual=bilingual, convert=convert)
        located = self.json_text.spans.keys() | self.json_text.literals.keys()
        if all(path in located for path in texts):
            return self.json_text.edited(texts).encode("utf-8")
        value = json.loads(self.json_text.text)  # a row without a translation column: the file is written again
        for (*_, name, _, index, _), text in texts.items():
            row = value["project"]["files"][name]["data"][index]
            row[1:2] = [text]
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
