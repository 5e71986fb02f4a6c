"""An RPG Maker MZ game folder in one command: maps, common events, database and System.json translated, every
other file copied, the copy valid JSON with every control code intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def command(code: int, parameters: list[Any], indent: int = 0) -> dict[str, Any]:
    return {"code": code, "indent": indent, "parameters": parameters}


def write_game(root: Path) -> dict[str, Any]:
    """An MZ project folder as the editor saves it (compact JSON, one entry per line in the database)."""
    data = root / "data"
    data.mkdir(parents=True)
    dialogue = [
        command(101, ["Actor1", 0, 0, 2, "\\N[1]"]),
        command(401, ["\\C[3]村長\\C[0]：ようこそ、\\N[1]さん！"]),
        command(401, ["所持金は\\V[1]\\Gです。\\{大変だ！"]),
        command(102, [["はい", "いいえ"], 1, 0, 2, 0]),
        command(402, [0, "はい"], 1),
        command(401, ["ありがとう。"], 2),
        command(0, [], 2),
        command(402, [1, "いいえ"], 1),
        command(355, ["$gameVariables.setValue(1, 'スクリプト')"]),
        command(0, []),
    ]
    game: dict[str, Any] = {
        "Map001.json": {
            "displayName": "はじまりの村",
            "note": "<メモ>",
            "events": [
                None,
                {"id": 1, "name": "EV001", "pages": [{"list": dialogue, "trigger": 0}], "x": 3, "y": 4},
            ],
        },
        "CommonEvents.json": [
            None,
            {"id": 1, "list": [command(405, ["遠い昔、"]), command(405, ["世界は闇に包まれた。"]), command(0, [])]},
        ],
        "Actors.json": [None, {"id": 1, "name": "ハロルド", "nickname": "勇者", "profile": "村の少年。", "note": ""}],
        "Items.json": [None, {"id": 1, "name": "ポーション", "description": "HPを\\C[2]500\\C[0]回復する。"}],
        "System.json": {
            "gameTitle": "勇者の旅",
            "currencyUnit": "G",
            "elements": ["", "物理", "炎"],
            "switches": ["", "イベント済み"],
            "terms": {
                "basic": ["レベル", "Lv"],
                "commands": ["戦う", "逃げる", None],
                "params": ["最大HP"],
                "messages": {"actionFailure": "%1には効かなかった！", "obtainGold": "%1\\Gを手に入れた！"},
            },
        },
        "MapInfos.json": [None, {"id": 1, "name": "はじまりの村", "order": 1, "parentId": 0}],
    }
    for name, value in game.items():
        if isinstance(value, list):  # the editor's layout: one entry per line
            text = "[\n" + ",\n".join(json.dumps(entry, ensure_ascii=False) for entry in value) + "\n]"
        else:
            text = json.dumps(value, ensure_ascii=False)
        (data / name).write_text(text, encoding="utf-8")
    (root / "img" / "faces").mkdir(parents=True)
    (root / "img" / "faces" / "Actor1.png").write_bytes(b"\x89PNG\r\n\x1a\nface")
    (root / "js").mkdir()
    (root / "js" / "plugins.js").write_text("var $plugins = [];\n", encoding="utf-8")
    (root / "index.html").write_text("<html></html>\n", encoding="utf-8")
    return game


def test_game_folder_translated_into_a_copy_with_the_same_layout(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    game = write_game(tmp_path / "game")
    result = translate_cli(tmp_path / "game", *echo_args)
    assert result.exit_code == 0, result.output
    copy = tmp_path / "game-zh"
    source_files = sorted(p.relative_to(tmp_path / "game").as_posix() for p in (tmp_path / "game").rglob("*"))
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == source_files
    for path in (tmp_path / "game").rglob("*"):
        if path.is_file():  # echo: every file is its source again, byte for byte, and loads as JSON
            assert (copy / path.relative_to(tmp_path / "game")).read_bytes() == path.read_bytes(), path
    for name in game:
        json.loads((copy / "data" / name).read_text(encoding="utf-8"))
    sent = set(recorder.texts)
    assert {
        "ようこそ、\\N[1]さん！",  # the echo answers what follows the prompt's last "："
        "所持金は\\V[1]\\Gです。\\{大変だ！",
        "はい",
        "いいえ",
        "ありがとう。",
        "はじまりの村",
        "遠い昔、",
        "世界は闇に包まれた。",
        "ハロルド",
        "勇者",
        "村の少年。",
        "ポーション",
        "HPを\\C[2]500\\C[0]回復する。",
        "勇者の旅",
        "物理",
        "レベル",
        "戦う",
        "最大HP",
        "%1には効かなかった！",
        "%1\\Gを手に入れた！",
        "\\N[1]",
    } == sent - {"G", "Lv", "炎", "逃げる"}
    assert not any("スクリプト" in text or "イベント済み" in text or "メモ" in text for text in sent)


def test_a_translation_that_alters_control_codes_is_written_as_its_source(tmp_path: Path) -> None:
    from sakura_translate.formats import LoadOptions, load_document

    write_game(tmp_path / "game")
    document = load_document(tmp_path / "game" / "data" / "Map001.json", LoadOptions())
    (segments,) = document.groups
    changed = [
        text.replace("\\C[3]", "").replace("\\{", "") + "（译）" if "\\" in text else text + "（译）"
        for text in segments
    ]
    out = json.loads(document.render([list(changed)]))
    lines = [c["parameters"] for c in out["events"][1]["pages"][0]["list"]]
    assert lines[1] == ["\\C[3]村長\\C[0]：ようこそ、\\N[1]さん！"]  # \C[3] lost: the source kept
    assert lines[2] == ["所持金は\\V[1]\\Gです。\\{大変だ！"]  # \{ lost: the source kept
    assert lines[5] == ["ありがとう。（译）"]
    assert out["displayName"] == "はじまりの村（译）"
    assert document.notes() == ["2 texts kept in Japanese: their translation altered control codes"]


def test_an_mv_deployment_keeps_www_data(tmp_path: Path, translate_cli: Any, echo_args: tuple[str, ...]) -> None:
    write_game(tmp_path / "mv" / "www")
    (tmp_path / "mv" / "Game.exe").write_bytes(b"MZ\x90\x00")
    result = translate_cli(tmp_path / "mv", *echo_args, "-o", tmp_path / "mv-cn")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mv-cn" / "Game.exe").read_bytes() == b"MZ\x90\x00"
    for name in ("Map001.json", "System.json", "MapInfos.json"):
        copy = tmp_path / "mv-cn" / "www" / "data" / name
        assert copy.read_bytes() == (tmp_path / "mv" / "www" / "data" / name).read_bytes()
    assert "files of the game copied as they are" in result.output


def test_a_game_run_again_comes_from_the_cache(tmp_path: Path, translate_cli: Any, echo_args: tuple[str, ...]) -> None:
    write_game(tmp_path / "game")
    first = translate_cli(tmp_path / "game", *echo_args, "--keep-cache")
    assert first.exit_code == 0, first.output
    again = translate_cli(tmp_path / "game", *echo_args, "--overwrite")
    assert again.exit_code == 0, again.output
    chunks = [line for line in again.output.splitlines() if "from cache" in line]
    assert chunks and all("(0 from cache)" not in line for line in chunks), again.output
    assert not list((tmp_path / "game-zh").rglob("*.sakura-cache.jsonl"))  # removed after success
