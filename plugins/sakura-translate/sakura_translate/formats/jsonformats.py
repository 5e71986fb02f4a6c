"""Which tool wrote a ``.json`` file, judged by its content (and, for RPG Maker, its name): each kind reads it."""

from __future__ import annotations

import json
from pathlib import Path

from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Document, LoadOptions
from sakura_translate.formats.galtransl import GalTranslScript, NotAScript
from sakura_translate.formats.jsonspans import JsonText
from sakura_translate.formats.mtool import MToolFile
from sakura_translate.formats.paratranz import ParatranzFile
from sakura_translate.formats.rpgmaker import RpgMakerData, is_rpgmaker_data
from sakura_translate.formats.trans import TransProject


def load_json(path: Path, options: LoadOptions) -> Document:
    """A ``.json`` file as the document of the tool that wrote it; NotAScript when no reader knows it."""
    decoded = decode_text(path.read_bytes(), path, options.encoding)
    try:
        json_text = JsonText(decoded.text)
    except json.JSONDecodeError as exc:
        raise InputError(zh(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})", "不是有效的 JSON")) from None
    value = json_text.value
    if is_rpgmaker_data(path, value):
        return RpgMakerData(path, json_text, decoded.encoding)
    if TransProject.sniff(value):
        return TransProject.from_json(path, json_text, decoded.encoding)
    if ParatranzFile.sniff(value):
        return ParatranzFile.from_json(path, json_text, decoded.encoding)
    if GalTranslScript.sniff(value):
        return GalTranslScript.from_json(path, json_text, options, decoded.encoding)
    if MToolFile.sniff(value):
        return MToolFile.from_json(path, json_text, decoded.encoding)
    raise NotAScript(
        zh(
            f"{path}: not a JSON file sakura translate knows (name/message script, MTool, Paratranz, RPG Maker data)",
            "不是可识别的 JSON 文件",
        )
    )
