"""Name/message JSON game scripts: ``[{"name": ..., "message": ...}, ...]``, as GalTransl, VNTextPatch,
SExtractor and msg-tool write them.

Each message is one segment; a speaker's line is sent as ``name「message」`` and line breaks inside a message as
a literal ``\\n``, as GalTransl sends them to Sakura models. Names are translated through the glossary (an entry
whose source is exactly the name); names without one are kept and listed in the report. Other keys are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text
from sakura_translate.formats.jsonspans import JsonPath, JsonText
from sakura_translate.glossary import Glossary

ESCAPED_NEWLINE = "\\n"


class NotAScript(InputError):
    """A file with nothing to translate: JSON that is no GalTransl script at all (a glossary, MTool's file), or
    an empty text. An error for a file given alone; a folder's run leaves it out."""


class GalTranslScript(Document):
    """A GalTransl JSON script."""

    kind = "game script"

    def __init__(self, path: Path, json_text: JsonText, glossary: Glossary, encoding: str) -> None:
        self.json_text = json_text
        items: list[dict[str, Any]] = json_text.value
        self.items = items
        self.glossary = glossary
        self.translated_items: list[int] = []
        segments = []
        for index, item in enumerate(items):
            message = item["message"]
            if not message.strip():
                continue
            line = message.replace("\r\n", ESCAPED_NEWLINE).replace("\n", ESCAPED_NEWLINE)
            name = item.get("name")
            segments.append(f"{name}「{line}」" if name else line)
            self.translated_items.append(index)
        super().__init__(path, [segments], encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> GalTranslScript:
        decoded = decode_text(path.read_bytes(), path, options.encoding)
        try:
            json_text = JsonText(decoded.text)
        except json.JSONDecodeError as exc:
            raise InputError(zh(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})", "不是有效的 JSON")) from None
        return cls.from_json(path, json_text, options, decoded.encoding)

    @staticmethod
    def sniff(value: Any) -> bool:
        """Whether a parsed JSON value looks like a name/message script."""
        return isinstance(value, list) and any(isinstance(item, dict) and "message" in item for item in value)

    @classmethod
    def from_json(cls, path: Path, json_text: JsonText, options: LoadOptions, encoding: str) -> GalTranslScript:
        """The script in an already parsed JSON text."""
        items = json_text.value
        if not cls.sniff(items):
            raise NotAScript(
                zh(
                    f'{path}: not a GalTransl script (a JSON list of {{"name", "message"}} objects)',
                    "不是 GalTransl 脚本",
                )
            )
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("message"), str):
                raise InputError(
                    zh(f"{path}: item {index} of the script has no text 'message'", "脚本条目缺少 message 文本")
                )
            if item.get("name") is not None and not isinstance(item["name"], str):
                raise InputError(
                    zh(f"{path}: item {index} of the script has a 'name' that is not text", "脚本条目的 name 不是文本")
                )
        return cls(path, json_text, options.glossary, encoding)

    def speakers_without_glossary(self) -> list[str]:
        """Speakers' names that no glossary entry translates, in order of first appearance."""
        names = dict.fromkeys(str(item["name"]) for item in self.items if item.get("name"))
        return [name for name in names if self.glossary.lookup(name) is None]

    def kept_names(self) -> list[str]:
        return self.speakers_without_glossary()

    def notes(self) -> list[str]:
        missing = self.speakers_without_glossary()
        if not missing:
            return []
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        return [f"names kept untranslated (add them to a glossary to translate them): {shown}"]

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        edits: dict[JsonPath, str] = {}
        for index, item in enumerate(self.items):
            name = item.get("name")
            if name:
                dst = self.glossary.lookup(name)
                edits[(index, "name")] = convert(dst) if dst is not None else name
        for index, translation in zip(self.translated_items, translated, strict=True):
            source = self.items[index]["message"]
            text = convert(merged_text(translation))
            if self.items[index].get("name") and "「" in text:
                text = text.partition("「")[2].removesuffix("」")
            newline = "\r\n" if "\r\n" in source else "\n"
            text = text.replace("\n", newline).replace(ESCAPED_NEWLINE, newline)
            edits[(index, "message")] = (
                f"{source}{newline}{text}" if bilingual and text else (source if bilingual else text)
            )
        return self.json_text.edited(edits).encode("utf-8")
