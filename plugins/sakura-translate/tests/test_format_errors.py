"""Bad input in the game and tool formats: one line in English and Chinese, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CASES = {
    "broken.trans": ('{"project": 3', "broken.trans:1: not valid JSON"),
    "empty.rpy": ("label start:\n    return\n", "empty.rpy: has no text to translate（"),
    "empty.po": ('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n', "empty.po: has no text"),
    "other.json": ('{"version": 2, "items": [1, 2]}', "other.json: not a JSON file sakura translate knows"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line(tmp_path: Path, translate_cli: Any, echo_args: tuple[str, ...], name: str) -> None:
    text, message = CASES[name]
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    result = translate_cli(source, *echo_args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "（" in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
