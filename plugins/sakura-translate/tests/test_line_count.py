"""A reply with another line count never costs structure: the echo engine answers only the last line of a chunk,
so every chunk of more than one line comes back short; the pipeline splits it down to single lines and every cue,
paragraph and line keeps its own translation (issue 21, defect 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pysubs2

# The echo's answer is its Japanese input: the checks it fails by design are off; the default --chunk-chars
# puts many lines in each chunk.
ECHO_WHOLE = ("--engine", "echo", "--model", "sakura-echo-v1.0", "--greedy")
ECHO_WHOLE += ("--no-check", "kana", "--no-check", "untranslated")
CUES = [f"{number}番目の台詞です。聞こえますか？" for number in range(1, 9)]


def test_srt_keeps_every_cue(tmp_path: Path, translate_cli: Any, recorder: Any) -> None:
    subs = pysubs2.SSAFile()
    for number, text in enumerate(CUES):
        subs.append(pysubs2.SSAEvent(start=number * 2000, end=number * 2000 + 1500, text=text))
    subs.save(str(tmp_path / "ep.srt"))
    result = translate_cli(tmp_path / "ep.srt", *ECHO_WHOLE, "--slots", "1")
    assert result.exit_code == 0, result.output
    translated = pysubs2.load(str(tmp_path / "ep.zh.srt"))
    assert [(event.start, event.text) for event in translated] == [(event.start, event.text) for event in subs]
    assert "0 lines flagged" in result.output
    assert len(recorder.generations) > len(CUES)  # it did answer short, and was split


def test_epub_keeps_every_paragraph(tmp_path: Path, files: Any, translate_cli: Any) -> None:
    chapters = [("第一章", [f"段落{n}です。" for n in range(6)]), ("第二章", [f"次の段落{n}です。" for n in range(5)])]
    source = files.epub(tmp_path / "book.epub", chapters, ruby=False)
    result = translate_cli(source, *ECHO_WHOLE, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert files.epub_paragraphs(tmp_path / "book.zh.epub") == files.epub_paragraphs(source)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["files"][0]["flagged"] == [] and report["stats"]["splits"] > 0


def test_novel_keeps_every_line(tmp_path: Path, files: Any, translate_cli: Any) -> None:
    lines = [f"　{n}行目の文章です。" if n % 5 else "" for n in range(1, 60)]
    source = files.novel(tmp_path / "novel.txt", "utf-8", lines)
    result = translate_cli(source, *ECHO_WHOLE, "--chunk-chars", "120")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "novel.zh.txt").read_bytes().decode().split("\r\n")[:-1] == lines


def test_a_chunk_too_long_for_the_context_is_split_and_a_line_too_long_is_kept(
    tmp_path: Path, files: Any, translate_cli: Any
) -> None:
    long_line = "とても長い一行です。" * 40  # 400 characters: no prompt holding it fits 300 tokens
    lines = [f"{n}行目の文章です。" for n in range(1, 9)]
    lines.insert(4, long_line)
    source = files.novel(tmp_path / "long.txt", "utf-8", lines)
    result = translate_cli(source, *ECHO_WHOLE, "--n-ctx", "300", "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "long.zh.txt").read_bytes().decode().split("\r\n")[:-1] == lines
    flagged = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["files"][0]["flagged"]
    assert [(f["position"], f["source"], f["reasons"]) for f in flagged] == [(5, long_line, ["context_overflow"])]
    assert "line 5 kept in the source [context_overflow]" in result.output
    assert "(context_overflow 1)" in result.output
    assert "larger context (--n-ctx)" in result.output and "--chunk-chars" in result.output  # not "run it again"


async def test_through_a_server_an_overflowing_chunk_is_split_too(
    app_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    from sakura_echo.engine import EchoEngine, EchoOptions

    engine = EchoEngine(EchoOptions(n_ctx=300))
    await engine.load("sakura-echo-v1.0")
    server = await app_server(engine)
    long_line = "とても長い一行です。" * 40
    lines = ["一行目の文章です。", "二行目の文章です。", long_line, "四行目の文章です。"]
    source = files.novel(tmp_path / "long.txt", "utf-8", lines)
    report = tmp_path / "report.json"
    code, _, stderr = await translate_process.run(
        source, "--server", server.url, *ECHO_WHOLE[4:], "--chunk-chars", "200", "--report", report
    )
    assert code == 0, stderr
    assert (tmp_path / "long.zh.txt").read_bytes().decode().split("\r\n")[:-1] == lines
    flagged = json.loads(report.read_text(encoding="utf-8"))["files"][0]["flagged"]
    assert [(f["position"], f["reasons"]) for f in flagged] == [(3, ["context_overflow"])]
    await engine.close()
