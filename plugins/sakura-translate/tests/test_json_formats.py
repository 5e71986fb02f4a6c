"""MTool, Paratranz and VNTextPatch/SExtractor JSON through the echo engine: only the translated strings change,
and a file whose translation is its source comes back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MTOOL = {
    "\\C[2]アリス\\C[0]「おはよう」": "\\C[2]アリス\\C[0]「おはよう」",
    "今日はいい天気ですね。\n散歩に行こう。": "今日はいい天気ですね。\n散歩に行こう。",
    "やくそう": "やくそう",
    "ポーション": "药水",  # translated already: kept, not sent
}


def test_mtool_values_translated_keys_kept(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "ManualTransFile.json"
    source.write_text(json.dumps(MTOOL, ensure_ascii=False, indent=4), encoding="utf-8")
    result = translate_cli(source, *echo_args)
    assert result.exit_code == 0, result.output
    output = tmp_path / "ManualTransFile.zh.json"
    assert output.read_bytes() == source.read_bytes()  # echo: every value is its key again
    # line breaks are sent as a literal \n and the control codes as written
    assert sorted(recorder.texts) == sorted(key.replace("\n", "\\n") for key in MTOOL if key != "ポーション")
    result = translate_cli(source, *echo_args, "--bilingual", "-o", tmp_path / "bi.json")
    assert result.exit_code == 0, result.output
    bilingual = json.loads((tmp_path / "bi.json").read_text(encoding="utf-8"))
    assert list(bilingual) == list(MTOOL)
    assert bilingual["やくそう"] == "やくそう\nやくそう" and bilingual["ポーション"] == "药水"


def test_a_src_dst_glossary_is_not_an_mtool_file(
    tmp_path: Path, translate_cli: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "names.json"
    source.write_text(json.dumps({"アリス": "爱丽丝"}, ensure_ascii=False), encoding="utf-8")
    result = translate_cli(source, *echo_args)
    assert result.exit_code == 2
    assert "not a JSON file sakura translate knows" in result.output


def test_paratranz_translation_fields_written(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    entries = [
        {"key": "Map001/1", "original": "ようこそ、\\N[1]さん。", "translation": "", "stage": 0, "context": "村人"},
        {"key": "Map001/2", "original": "", "translation": "", "stage": 0},
        {"key": "Map001/3", "original": "宝箱を開けた！", "translation": "", "stage": 0},
    ]
    source = tmp_path / "Map001.json"
    source.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "Map001.zh.json").read_text(encoding="utf-8"))
    assert [item["translation"] for item in written] == ["ようこそ、\\N[1]さん。", "", "宝箱を開けた！"]
    assert [{k: v for k, v in item.items() if k != "translation"} for item in written] == [
        {k: v for k, v in item.items() if k != "translation"} for item in entries
    ]
    assert recorder.texts == ["ようこそ、\\N[1]さん。", "宝箱を開けた！"]
    # translated once already (translation = original): nothing changes, byte for byte
    done = tmp_path / "done" / "Map001.json"
    done.parent.mkdir()
    done.write_bytes((tmp_path / "Map001.zh.json").read_bytes())
    assert translate_cli(done, *echo_args, "-o", tmp_path / "again.json").exit_code == 0
    assert (tmp_path / "again.json").read_bytes() == done.read_bytes()


def test_vntextpatch_script_edited_in_place(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    # VNTextPatch writes four-space indentation, names only where a speaker is shown, \r\n inside messages
    script = [
        {"name": "美咲", "message": "「先輩、待ってください！」"},
        {"message": "窓の外は雨だった。\r\n静かな夜だった。"},
        {"name": "先輩", "message": "「……ああ」"},
    ]
    source = tmp_path / "script01.json"
    text = json.dumps(script, ensure_ascii=False, indent=4).replace("\n", "\r\n")
    source.write_bytes(text.encode("utf-8"))
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "script01.zh.json").read_bytes() == source.read_bytes()
    assert recorder.texts == [
        "美咲「「先輩、待ってください！」」",
        "窓の外は雨だった。\\n静かな夜だった。",
        "先輩「「……ああ」」",
    ]
    glossary = tmp_path / "names.txt"
    glossary.write_text("美咲->美咲(Misaki)\n", encoding="utf-8")
    result = translate_cli(source, *echo_args, "-g", glossary, "-o", tmp_path / "named.json")
    assert result.exit_code == 0, result.output
    named = json.loads((tmp_path / "named.json").read_text(encoding="utf-8"))
    assert [item.get("name") for item in named] == ["美咲(Misaki)", None, "先輩"]
    assert [item["message"] for item in named] == [item["message"] for item in script]


def trans_project(translated: bool) -> dict[str, Any]:
    def row(text: str) -> list[Any]:
        return [text, text if translated else None]

    return {
        "project": {
            "gameEngine": "rmmz",
            "gameTitle": "勇者の旅",
            "files": {
                "data/Actors.json": {
                    "data": [row("ハロルド"), row("村の少年。")],
                    "context": [["Actors/1/name"], ["Actors/1/profile"]],
                    "tags": [None, "red"],
                },
                "data/Map001.json": {
                    "data": [row("\\C[3]村長\\C[0]「ようこそ」"), ["", None]],
                    "context": [["Map001/events/1/pages/0/list/1"], []],
                    "tags": [],
                },
            },
        }
    }


def test_translator_plus_plus_project_rows_filled(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "game.trans"
    source.write_text(json.dumps(trans_project(False), ensure_ascii=False), encoding="utf-8")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "game.zh.trans").read_text(encoding="utf-8"))
    assert written == trans_project(True)  # rows filled; context, tags and the empty row kept
    assert recorder.texts == ["ハロルド", "村の少年。", "\\C[3]村長\\C[0]「ようこそ」"]
    done = tmp_path / "done.trans"
    done.write_text(json.dumps(trans_project(True), ensure_ascii=False, indent=1), encoding="utf-8")
    assert translate_cli(done, *echo_args).exit_code == 0
    assert (tmp_path / "done.zh.trans").read_bytes() == done.read_bytes()
