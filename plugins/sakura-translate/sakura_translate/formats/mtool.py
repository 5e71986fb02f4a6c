"""MTool's translation files (``ManualTransFile.json``): one object, each source text a key, its translation the
value (MTool writes the source as the value until it is translated). The key of each entry whose value is still
its key is sent, and the value written; entries translated already are kept as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sakura_translate.formats.jsondoc import JsonStringsDocument
from sakura_translate.formats.jsonspans import JsonText


class MToolFile(JsonStringsDocument):
    """An MTool key-value JSON file."""

    kind = "MTool file"

    @staticmethod
    def sniff(value: Any) -> bool:
        """Whether a parsed JSON value is MTool's shape: an object of strings to strings, some value still its key
        (a ``{"src": "dst"}`` glossary has none, and is not translated)."""
        return (
            isinstance(value, dict)
            and all(isinstance(v, str) for v in value.values())
            and any(key == text for key, text in value.items())
        )

    @classmethod
    def from_json(cls, path: Path, json_text: JsonText, encoding: str) -> MToolFile:
        targets = [((key,), key) for key, value in json_text.value.items() if key.strip() and value == key]
        return cls(path, json_text, targets, encoding)
