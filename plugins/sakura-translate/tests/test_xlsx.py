"""Spreadsheets made with openpyxl (WOLF's export, Translator++'s, a plain sheet) through the echo engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.styles import Font

WOLF = [
    ("code", "flag", "type", "info", "src", "dst"),
    (101, None, "Message", "Map001/EV1", "\\c[2]村長\\c[0]「ようこそ」", None),
    (102, None, "Choice", "Map001/EV1", "はい", None),
    (0, None, "DB", "Item/1", None, None),
]
TPP = [
    ("Original Text", "Initial", "Machine translation", "Better translation", "Best translation"),
    ("勇者の剣", None, "勇者之剑", None, None),
    ("魔法を唱えた！\n敵は倒れた。", None, None, None, None),
]
PLAIN = [("はじまりの村", None), ("宿屋", None)]


def write_book(path: Path, translated: bool = False) -> Path:
    workbook = openpyxl.Workbook()
    sheets = [("WOLF", WOLF, 5, 6), ("Translator++", TPP, 1, 2), ("plain", PLAIN, 1, 2)]
    for index, (title, rows, source, target) in enumerate(sheets):
        sheet = workbook.active if index == 0 else workbook.create_sheet()
        assert sheet is not None
        sheet.title = title
        for row in rows:
            sheet.append(list(row))
        if translated:
            for number in range(1 if title == "plain" else 2, len(rows) + 1):
                sheet.cell(row=number, column=target).value = sheet.cell(row=number, column=source).value or None
        sheet.cell(row=1, column=1).font = Font(bold=True)
        sheet.column_dimensions["A"].width = 40
    workbook.save(str(path))
    return path


def test_three_layouts_translated_into_their_target_columns(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = write_book(tmp_path / "texts.xlsx")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(str(tmp_path / "texts.zh.xlsx"))
    assert book.sheetnames == ["WOLF", "Translator++", "plain"]
    wolf = [list(row) for row in book["WOLF"].iter_rows(values_only=True)]
    assert wolf[0] == list(WOLF[0])
    assert [row[5] for row in wolf[1:]] == ["\\c[2]村長\\c[0]「ようこそ」", "はい", None]
    assert [row[:5] for row in wolf[1:]] == [list(row[:5]) for row in WOLF[1:]]
    tpp = [list(row) for row in book["Translator++"].iter_rows(values_only=True)]
    assert [row[1] for row in tpp[1:]] == ["勇者の剣", "魔法を唱えた！\n敵は倒れた。"]
    assert tpp[1][2] == "勇者之剑"  # other translation columns kept
    assert [list(row) for row in book["plain"].iter_rows(values_only=True)] == [["はじまりの村"] * 2, ["宿屋"] * 2]
    assert book["WOLF"]["A1"].font.bold and book["plain"].column_dimensions["A"].width == 40
    assert "魔法を唱えた！\\n敵は倒れた。" in recorder.texts and "code" not in recorder.texts
    # a workbook whose targets already hold the translation comes back byte for byte
    done = write_book(tmp_path / "done.xlsx", translated=True)
    assert translate_cli(done, *echo_args).exit_code == 0
    assert (tmp_path / "done.zh.xlsx").read_bytes() == done.read_bytes()


def test_a_broken_workbook_is_one_line(tmp_path: Path, translate_cli: Any, echo_args: tuple[str, ...]) -> None:
    source = tmp_path / "broken.xlsx"
    source.write_bytes(b"PK\x03\x04 not really")
    result = translate_cli(source, *echo_args)
    assert result.exit_code == 2
    assert "not a readable .xlsx workbook" in result.output and "Traceback" not in result.output
