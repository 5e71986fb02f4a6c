"""RPG Maker MV/MZ data files, straight from a game's ``data/`` folder (``www/data/`` in MV's deployments).

Translated: event dialogue in maps, common events and troops (show text 401, scrolling text 405, choices 102 and
their branches 402, MZ's speaker name in 101, actor name changes 320/324), each map's display name, the database's
names, nicknames, profiles, descriptions and battle messages, and ``System.json``'s game title and terms. Scripts,
plugin commands, notes and switch/variable names are not. Each text is one segment (a message's lines one each, as
the window shows them). Control codes (``\\V[1]``, ``\\N[2]``, ``\\C[3]``, ``\\{``) must come back exactly: the
markup check retries a line that altered them, and a translation that still lost or added one is written as its
source (and counted in the report). The file is edited in place: what is not translated stays byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sakura_translate.checks import markup
from sakura_translate.formats.base import Convert, Translations
from sakura_translate.formats.jsondoc import JsonStringsDocument
from sakura_translate.formats.jsonspans import JsonPath, JsonText

_MAP = re.compile(r"Map\d{3,}\.json", re.IGNORECASE)
#: Database files and the fields of each entry that players read.
DATABASE_FIELDS: dict[str, tuple[str, ...]] = {
    "Actors.json": ("name", "nickname", "profile"),
    "Classes.json": ("name",),
    "Skills.json": ("name", "description", "message1", "message2"),
    "Items.json": ("name", "description"),
    "Weapons.json": ("name", "description"),
    "Armors.json": ("name", "description"),
    "Enemies.json": ("name",),
    "States.json": ("name", "message1", "message2", "message3", "message4"),
}
EVENT_FILES = ("CommonEvents.json", "Troops.json")
SYSTEM_LISTS = ("elements", "skillTypes", "weaponTypes", "armorTypes", "equipTypes")
#: Event commands with text: code → the parameter index holding it.
TEXT_COMMANDS = {401: 0, 405: 0, 402: 1, 320: 1, 324: 1}


def is_rpgmaker_data(path: Path, value: Any) -> bool:
    """Whether ``path`` is an RPG Maker MV/MZ data file with text (by its name, and its shape)."""
    name = path.name
    if name == "System.json":
        return isinstance(value, dict) and "terms" in value
    if _MAP.fullmatch(name):
        return isinstance(value, dict) and "events" in value
    if name in DATABASE_FIELDS or name in EVENT_FILES:
        return isinstance(value, list) and (not value or value[0] is None)
    return False


def is_game_folder(folder: Path) -> bool:
    """Whether ``folder`` is an RPG Maker MV/MZ game (its ``data/System.json`` or MV's ``www/data/System.json``)."""
    return (folder / "data" / "System.json").is_file() or (folder / "www" / "data" / "System.json").is_file()


def _strings(json_text: JsonText, path: JsonPath, found: list[tuple[JsonPath, str]]) -> None:
    """Add the string at ``path`` (if it is a non-blank string) to ``found``."""
    if path in json_text.spans:
        text = json_text.string(path)
        if text.strip():
            found.append((path, text))


def _event_list(json_text: JsonText, commands: Any, path: JsonPath, found: list[tuple[JsonPath, str]]) -> None:
    if not isinstance(commands, list):
        return
    for index, command in enumerate(commands):
        if not isinstance(command, dict):
            continue
        code, parameters = command.get("code"), command.get("parameters")
        if not isinstance(parameters, list):
            continue
        here = (*path, index, "parameters")
        if code in TEXT_COMMANDS:
            _strings(json_text, (*here, TEXT_COMMANDS[code]), found)
        elif code == 101 and len(parameters) > 4:  # MZ: the speaker's name
            _strings(json_text, (*here, 4), found)
        elif code == 102 and parameters and isinstance(parameters[0], list):
            for choice in range(len(parameters[0])):
                _strings(json_text, (*here, 0, choice), found)


def _pages(json_text: JsonText, owner: Any, path: JsonPath, found: list[tuple[JsonPath, str]]) -> None:
    pages = owner.get("pages") if isinstance(owner, dict) else None
    for number, page in enumerate(pages if isinstance(pages, list) else []):
        if isinstance(page, dict):
            _event_list(json_text, page.get("list"), (*path, "pages", number, "list"), found)


def texts_of(name: str, json_text: JsonText) -> list[tuple[JsonPath, str]]:
    """The texts to translate in the data file called ``name``, in file order, with their paths."""
    value = json_text.value
    found: list[tuple[JsonPath, str]] = []
    if name == "System.json":
        for key in ("gameTitle", "currencyUnit"):
            _strings(json_text, (key,), found)
        for key in SYSTEM_LISTS:
            for index in range(len(value.get(key) or [])):
                _strings(json_text, (key, index), found)
        terms = value.get("terms") or {}
        for key in ("basic", "commands", "params"):
            for index in range(len(terms.get(key) or [])):
                _strings(json_text, ("terms", key, index), found)
        for key in terms.get("messages") or {}:
            _strings(json_text, ("terms", "messages", key), found)
    elif _MAP.fullmatch(name):
        _strings(json_text, ("displayName",), found)
        for index, event in enumerate(value.get("events") or []):
            _pages(json_text, event, ("events", index), found)
    elif name in EVENT_FILES:
        for index, entry in enumerate(value):
            if isinstance(entry, dict):
                _event_list(json_text, entry.get("list"), (index, "list"), found)
                _pages(json_text, entry, (index,), found)
    else:
        for index, entry in enumerate(value):
            if isinstance(entry, dict):
                for key in DATABASE_FIELDS[name]:
                    _strings(json_text, (index, key), found)
    return sorted(found, key=lambda item: json_text.spans[item[0]].start)


class RpgMakerData(JsonStringsDocument):
    """One RPG Maker MV/MZ data file."""

    kind = "RPG Maker data"

    def __init__(self, path: Path, json_text: JsonText, encoding: str) -> None:
        self.codes_altered = 0
        super().__init__(path, json_text, texts_of(path.name, json_text), encoding)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        texts = self.texts(translations, bilingual=bilingual, convert=convert)
        self.codes_altered = 0
        for target, source in self.targets:
            expected = markup(source)
            if bilingual and texts[target] != source:
                expected += markup(source)
            if markup(texts[target]) != expected:
                texts[target] = source
                self.codes_altered += 1
        return self.json_text.edited(texts).encode("utf-8")

    def notes(self) -> list[str]:
        if not self.codes_altered:
            return []
        return [f"{self.codes_altered} texts kept in Japanese: their translation altered control codes"]
