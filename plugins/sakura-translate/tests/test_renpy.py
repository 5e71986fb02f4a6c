"""Ren'Py translation files and script dialogue through the echo engine: only the text between quotes changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TL = """\ufeff# TODO: Translation updated at 2024-05-01 12:00

# game/script.rpy:12
translate chinese start_636ae3f5:

    # e "こんにちは、[player]さん。{i}本当に{/i}久しぶり！"
    e "こんにちは、[player]さん。{i}本当に{/i}久しぶり！"

# game/script.rpy:14
translate chinese start_a1b2c3d4:

    # "静かな朝だった。\\n鳥が鳴いている。" with dissolve
    "静かな朝だった。\\n鳥が鳴いている。" with dissolve

# game/script.rpy:16
translate chinese start_5e6f7a8b:

    # "謎の声" "……誰？"
    "謎の声" "……誰？"

translate chinese strings:

    # game/script.rpy:20
    old "はじめる"
    new "はじめる"

    # game/screens.rpy:88
    old "「続ける」と言った"
    new "「続ける」と言った"
"""

SCRIPT = """define e = Character("エミ", color="#c8ffc8")

label start:
    scene bg room
    show emi happy

    e "おはよう、[player]。"
    "窓の外で{b}雨{/b}が降っている。" with fade
    e happy "傘を持ってきた？"
    extend "{w}本当に？"
    "謎の声" "……誰？"

    menu:
        "持ってきた":
            jump yes
        "忘れた" if not umbrella:
            jump no

    $ renpy.notify("保存しました")
    return
"""


def test_translation_file_sources_from_comments_and_old(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "script.rpy"
    source.write_bytes(TL.replace("\n", "\r\n").encode("utf-8"))
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "script.zh.rpy").read_bytes() == source.read_bytes()
    assert recorder.texts == [
        "こんにちは、[player]さん。{i}本当に{/i}久しぶり！",
        "静かな朝だった。\\n鳥が鳴いている。",
        "……誰？",
        "はじめる",
        "「続ける」と言った",
    ]


def test_new_lines_are_written_and_tags_checked(tmp_path: Path) -> None:
    from sakura_translate.formats import LoadOptions, load_document

    source = tmp_path / "script.rpy"
    source.write_text(TL.replace('new "はじめる"', 'new ""'), encoding="utf-8")
    document = load_document(source, LoadOptions())
    assert document.groups == [
        [
            "こんにちは、[player]さん。{i}本当に{/i}久しぶり！",
            "静かな朝だった。\\n鳥が鳴いている。",
            "……誰？",
            "はじめる",
            "「続ける」と言った",
        ]
    ]
    translations = [["你好，[player]。好久不见！", "安静的早晨。\n鸟在叫。", "……是谁？", "开始", '说了"继续"']]
    text = document.render(translations).decode("utf-8")
    assert '    e "こんにちは、[player]さん。{i}本当に{/i}久しぶり！"' in text  # {i} lost: the source kept
    assert '    "安静的早晨。\\n鸟在叫。" with dissolve' in text
    assert '    "謎の声" "……是谁？"' in text
    assert '    new "开始"' in text
    assert '    new "说了\\"继续\\""' in text  # a quote in the translation escaped
    assert '    # e "こんにちは' in text and 'old "はじめる"' in text
    assert document.notes() == ["1 lines kept in Japanese: their translation altered text tags or [names]"]


def test_script_dialogue_and_choices_translated_in_place(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "game.rpy"
    source.write_text(SCRIPT, encoding="utf-8")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "game.zh.rpy").read_bytes() == source.read_bytes()
    assert recorder.texts == [
        "おはよう、[player]。",
        "窓の外で{b}雨{/b}が降っている。",
        "傘を持ってきた？",
        "{w}本当に？",
        "……誰？",
        "持ってきた",
        "忘れた",
    ]
