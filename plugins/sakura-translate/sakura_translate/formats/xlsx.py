"""Spreadsheets (``.xlsx``, read and written with openpyxl): a source column is sent and a target column written,
on every sheet that has them.

The columns are found by the header row: WOLF RPG exports (``code, flag, type, info, src, dst``), Translator++'s
export (``Original Text`` then ``Initial``/``Machine translation``…), and plain sheets headed ``source``/``target``
(``原文``/``译文``, ``Japanese``/``Chinese``…). A sheet without such a header is a plain two-column sheet: column A
sent, column B written. Styles, widths, other columns and other sheets are kept; a file whose target cells already
hold what would be written is returned byte for byte.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text

if TYPE_CHECKING:  # openpyxl (and the numpy it imports) loads with the first workbook, not with the format list
    from openpyxl.workbook.workbook import Workbook

SOURCE_HEADERS = ("src", "source", "original", "original text", "原文", "japanese", "ja", "text")
TARGET_HEADERS = ("dst", "target", "translation", "initial", "machine translation", "译文", "chinese", "zh")


@dataclass(frozen=True)
class Cell:
    """A source cell and the cell its translation goes in (sheet title, row, columns 1-based)."""

    sheet: str
    row: int
    source_column: int
    target_column: int
    text: str


def _columns(header: list[object]) -> tuple[int, int] | None:
    """The source and target columns (1-based) a header row names, if it names both."""
    names = [str(value).strip().lower() if value is not None else "" for value in header]
    source = next((i + 1 for i, name in enumerate(names) if name in SOURCE_HEADERS), None)
    if source is None:
        return None
    target = next((i + 1 for i, name in enumerate(names) if name in TARGET_HEADERS and i + 1 != source), None)
    return (source, target if target is not None else source + 1)


class Spreadsheet(Document):
    """An ``.xlsx`` workbook."""

    kind = "spreadsheet"

    def __init__(self, path: Path, data: bytes, workbook: Workbook) -> None:
        self.data = data
        self.cells: list[Cell] = []
        for sheet in workbook.worksheets:
            rows = list(sheet.iter_rows(values_only=True))
            if not rows:
                continue
            columns = _columns(list(rows[0]))
            first = 2 if columns is not None else 1
            source_column, target_column = columns or (1, 2)
            for number in range(first, len(rows) + 1):
                row = rows[number - 1]
                value = row[source_column - 1] if len(row) >= source_column else None
                if isinstance(value, str) and value.strip():
                    self.cells.append(Cell(sheet.title, number, source_column, target_column, value))
        super().__init__(path, [[cell.text.replace("\n", "\\n") for cell in self.cells]])

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Spreadsheet:
        import openpyxl

        data = path.read_bytes()
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data))
        except Exception as exc:  # openpyxl raises zip, XML and key errors alike for a broken file
            raise InputError(zh(f"{path}: not a readable .xlsx workbook ({exc})", "无法读取的 .xlsx 文件")) from None
        return cls(path, data, workbook)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        import openpyxl

        workbook = openpyxl.load_workbook(io.BytesIO(self.data))
        changed = False
        for cell, translation in zip(self.cells, translated, strict=True):
            text = convert(merged_text(translation)).replace("\\n", "\n")
            if bilingual and text:
                text = f"{cell.text}\n{text}"
            target = workbook[cell.sheet].cell(row=cell.row, column=cell.target_column)
            if target.value != text:
                target.value = text
                changed = True
        if not changed:
            return self.data
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()
