"""The model's version chooses the prompt; line-count mismatches are retried once, kept and reported; bad input is
one line, exit code 2, and nothing written."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sakura_echo.backend import EchoModel

from sakura_core.plugins import PluginRegistry
from sakura_core.testing.ports import free_port


@pytest.mark.parametrize("version", ["0.8", "0.9", "0.10", "1.0", "1.5", "galtransl"])
def test_the_model_version_chooses_the_prompt(
    version: str, tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    lines = ["吾輩は猫である。", "名前はまだ無い。"]
    source = files.novel(tmp_path / "neko.txt", "utf-8", lines)
    glossary = tmp_path / "glossary.txt"
    glossary.write_text("吾輩->我\n", encoding="utf-8")
    model = f"sakura-echo-v{version}" if version[0].isdigit() else "GalTransl-echo-v2.6"
    args = ("--engine", "echo", "--model", model, "--greedy", "--chunk-chars", "1", "--slots", "1", "-g", glossary)
    args += ("--no-check", "kana", "--no-check", "untranslated", "--no-check", "glossary")  # an echo fails them
    result = translate_cli(source, *args)
    assert result.exit_code == 0, result.output
    expected_name = {"0.8": "v0.8", "0.9": "v0.9", "0.10": "v0.10", "1.0": "v1.0", "1.5": "v1.5"}.get(version, version)
    expected_format = PluginRegistry.create().prompt_format(expected_name)
    assert f"({expected_format.name} prompt)" in result.output
    first, second = recorder.generations
    assert first.messages == expected_format.translation_messages(lines[0], "吾輩->我", None)
    # the echo engine answers the last line of its prompt (after a full-width colon): the text, so the output is
    # the input (a v1.5 prompt's empty think block after it is chat markup to the echo)
    answers = [EchoModel().answer(expected_format.render(g.messages)) for g in recorder.generations]
    assert recorder.texts == answers == lines
    assert second.messages == expected_format.translation_messages(lines[1], "", answers[0])
    assert (tmp_path / "neko.zh.txt").read_bytes() == ("\r\n".join(answers) + "\r\n").encode()


def test_a_format_without_a_glossary_says_so(
    tmp_path: Path, files: Any, translate_cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = files.novel(tmp_path / "neko.txt", "utf-8", ["吾輩は猫である。"])
    glossary = tmp_path / "glossary.txt"
    glossary.write_text("吾輩->我\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        result = translate_cli(source, "--engine", "echo", "--model", "sakura-echo-v0.9", "--greedy", "-g", glossary)
    assert result.exit_code == 0, result.output
    assert any("v0.9 prompt has no place for a glossary" in r.getMessage() for r in caplog.records)


def test_a_line_count_mismatch_is_retried_then_split_down_to_single_lines(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    # the echo engine answers only the last line of a chunk: three lines in, one out
    lines = ["一行目です。", "二行目です。", "三行目です。"]
    source = files.novel(tmp_path / "three.txt", "utf-8", lines)
    args = ("--engine", "echo", "--model", "sakura-echo-v1.0", "--greedy", "--no-check", "kana")
    result = translate_cli(source, *args, "--no-check", "untranslated", "--keep-cache")
    assert result.exit_code == 0, result.output
    users = [generation.user.rpartition("：")[2] for generation in recorder.generations]
    # the chunk and its retry; its halves: the first line alone, then the last two (and their retry), each alone
    assert (
        users == ["一行目です。\n二行目です。\n三行目です。"] * 2 + [lines[0]] + ["\n".join(lines[1:])] * 2 + lines[1:]
    )
    assert recorder.generations[1].messages[1:] == recorder.generations[0].messages[1:]
    assert "2 check retries, 2 splits, 0 lines flagged" in result.output
    # every line in its place
    assert (tmp_path / "three.zh.txt").read_text(encoding="utf-8").splitlines() == lines
    # and it is cached: running again generates nothing
    recorder.generations.clear()
    again = translate_cli(source, *args, "--no-check", "untranslated")
    assert again.exit_code == 0 and recorder.generations == []
    assert "1 chunks (1 from cache)" in again.output


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


ECHO = ("--engine", "echo", "--model", "sakura-echo-v1.0")


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, files: Any, translate_cli: Any) -> None:
    books = tmp_path / "books"
    books.mkdir()
    files.novel(books / "good.txt", "utf-8")
    (books / "broken.epub").write_bytes(b"PK\x03\x04 this is not a zip archive")
    assert "broken.epub: not a readable epub" in one_error_line(translate_cli(books, *ECHO))
    (books / "broken.epub").unlink()
    (books / "binary.txt").write_bytes(bytes(range(32)) * 8)
    assert "binary.txt: cannot tell its text encoding" in one_error_line(translate_cli(books, *ECHO))
    assert "--encoding" in one_error_line(translate_cli(books, *ECHO))
    (books / "binary.txt").unlink()
    sjis = files.novel(books / "sjis.txt", "shift_jis")
    assert "not valid utf-8 (byte 0)" in one_error_line(translate_cli(sjis, *ECHO, "--encoding", "utf-8"))
    assert "unknown encoding 'klingon'" in one_error_line(translate_cli(sjis, *ECHO, "--encoding", "klingon"))
    (books / "script.json").write_text('[{"name": "a", "message": 1}]', encoding="utf-8")
    assert "script.json: item 0 of the script has no text 'message'" in one_error_line(translate_cli(books, *ECHO))
    (books / "script.json").write_text('[{"message": "a"},', encoding="utf-8")
    assert "script.json:1: not valid JSON" in one_error_line(translate_cli(books, *ECHO))
    (books / "script.json").unlink()
    glossary = tmp_path / "glossary.txt"
    glossary.write_text("// names\n佐藤->佐藤\nthis line has no arrow\n", encoding="utf-8")
    line = one_error_line(translate_cli(books, *ECHO, "-g", glossary))
    assert "glossary.txt:3: cannot read glossary line 'this line has no arrow'" in line
    line = one_error_line(translate_cli(tmp_path / "missing.txt", *ECHO))
    assert "missing.txt: no such file or folder（没有这个文件或文件夹）" in line
    assert "no such glossary file" in one_error_line(translate_cli(books, *ECHO, "-g", tmp_path / "nope.txt"))
    (tmp_path / "notes.docx").write_bytes(b"PK")
    assert "notes.docx: unsupported file type" in one_error_line(translate_cli(tmp_path / "notes.docx", *ECHO))
    url = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(translate_cli(books, "--server", url))
    assert f"cannot reach a server at {url}" in line and "sakura run" in line
    assert "unknown engine 'nope'" in one_error_line(translate_cli(books, "--engine", "nope", "--model", "m"))
    assert "--engine needs --model" in one_error_line(translate_cli(books, "--engine", "echo"))
    # nothing was written for any of them: no output folder, no cache
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books", "glossary.txt", "notes.docx"]
    assert sorted(p.name for p in books.iterdir()) == ["good.txt", "sjis.txt"]
