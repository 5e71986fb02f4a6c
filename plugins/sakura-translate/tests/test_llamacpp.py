"""Through real llama.cpp with a tiny random-weight GGUF, in-process and through the core's server: the model's answers
are noise, so what is checked is that every chunk went through the model and the files keep their structure."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pysubs2
import pytest
from ebooklib import epub
from lxml import etree
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.tiny_model import write_tiny_gguf
from sakura_translate.chunking import chunk_lines

XHTML = "{http://www.w3.org/1999/xhtml}"
ENGINE_OPTIONS = ("--n-ctx", "1024", "--n-parallel", "2", "--threads", "1")
#: Short chunks and answers: the tiny model reads Japanese byte by byte.
SMALL = ("--chunk-chars", "24", "--max-tokens", "12", "--greedy")


def plain(text: str) -> str:
    """A subtitle's text without override blocks, its line breaks as newlines."""
    return re.sub(r"\{[^}]*\}", "", text).replace(r"\N", "\n")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("model"))


def test_in_process_subtitles_and_text(
    tiny_gguf: Path, tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    subtitles = files.subtitles(tmp_path / "episode.srt")
    novel = files.novel(tmp_path / "novel.txt", "euc_jp")
    for source in (subtitles, novel):
        recorder.generations.clear()
        report = tmp_path / f"{source.stem}.json"
        result = translate_cli(
            source, "--engine", "llamacpp", "--model", tiny_gguf, *ENGINE_OPTIONS, *SMALL, "--report", report
        )
        assert result.exit_code == 0, result.output
        data = json.loads(report.read_text())
        stats = data["stats"]
        sent = {generation.user.rpartition("：")[2] for generation in recorder.generations}
        # every chunk went through the model; a noise answer failing the checks made its chunk split
        assert stats["generations"] == len(recorder.generations) >= len(sent) >= stats["chunks"]
        assert all(g.finish_reason == "length" or g.text for g in recorder.generations)
    original, translated = pysubs2.load(str(subtitles)), pysubs2.load(str(tmp_path / "episode.zh.srt"))
    assert [(e.start, e.end) for e in translated] == [(e.start, e.end) for e in original]
    # each cue holds the model's answer, or its source where the answer failed the checks (and the report says so)
    flagged = json.loads((tmp_path / "episode.json").read_text())["files"][0]["flagged"]
    kept = {plain(line["source"]) for line in flagged}
    assert all(t.text != o.text or plain(o.text) in kept for t, o in zip(translated, original, strict=True) if o.text)
    assert (
        "tiny-qwen2-v1.0" in result.output and "(v1.0 prompt) via engine llamacpp, 2 chunks at a time" in result.output
    )
    assert "read as EUC-JP" in result.output


def test_in_process_answers_are_fitted_to_the_context_as_the_server_fits_them(
    tiny_gguf: Path, tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    source = files.novel(tmp_path / "novel.txt", "utf-8", ["吾輩は猫である。"])  # one chunk: no history to grow
    engine = ("--engine", "llamacpp", "--model", tiny_gguf, "--n-ctx", "512", "--n-parallel", "1", "--threads", "1")
    result = translate_cli(source, *engine, "--chunk-chars", "24", "--max-tokens", "1000", "--greedy")
    assert result.exit_code == 0, result.output
    assert recorder.generations  # the first try and its retries (the noise model's answers run to the limit)
    for generation in recorder.generations:  # asked for 1000 tokens, given what the context leaves
        assert generation.max_tokens + generation.prompt_tokens == 512, generation


def test_in_process_a_line_longer_than_the_context_is_kept_and_reported(
    tiny_gguf: Path, tmp_path: Path, files: Any, translate_cli: Any
) -> None:
    lines = ["吾輩は猫である。" * 30, "名前はまだ無い。"]
    source = files.novel(tmp_path / "novel.txt", "utf-8", lines)
    engine = ("--engine", "llamacpp", "--model", tiny_gguf, "--n-ctx", "256", "--n-parallel", "1", "--threads", "1")
    report = tmp_path / "report.json"
    result = translate_cli(source, *engine, "--chunk-chars", "500", "--greedy", "--report", report)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "novel.zh.txt").read_text(encoding="utf-8").splitlines()[0] == lines[0]
    flagged = json.loads(report.read_text())["files"][0]["flagged"]
    assert (flagged[0]["position"], flagged[0]["reasons"]) == (1, ["context_overflow"])
    assert "line 1 kept in the source [context_overflow]" in result.output
    assert "--chunk-chars" in result.output and "--n-ctx" in result.output


@pytest.fixture(scope="module")
async def llama_engine(tiny_gguf: Path) -> AsyncIterator[LlamaCppEngine]:
    engine = LlamaCppEngine(LlamaCppOptions(n_ctx=1024, n_parallel=2, threads=1))
    await engine.load(str(tiny_gguf))
    yield engine
    await engine.close()


async def test_epub_through_a_llamacpp_server(
    llama_engine: LlamaCppEngine, app_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    server = await app_server(llama_engine)
    source = files.epub(tmp_path / "neko.epub")
    report = tmp_path / "report.json"
    code, _, stderr = await translate_process.run(
        source, "--server", server.url, *SMALL, "--bilingual", "--report", report
    )
    assert code == 0, stderr
    data = json.loads(report.read_text())
    assert (data["model"], data["prompt_format"], data["slots"]) == ("sakura-tiny-qwen2-v1.0-f32", "v1.0", 2)
    (first_title, first_paragraphs), (second_title, second_paragraphs) = files.chapters
    texts = [first_title, *first_paragraphs, "吾輩は猫だ。", second_title, *second_paragraphs]
    chunks = len(chunk_lines(texts, 24))
    assert data["stats"]["chunks"] == chunks == 4 and data["stats"]["generations"] >= chunks
    assert data["stats"]["completion_tokens"] >= chunks * 12
    original, translated = epub.read_epub(str(source)), epub.read_epub(str(tmp_path / "neko.zh.epub"))
    assert [i.get_name() for i in translated.get_items()] == [i.get_name() for i in original.get_items()]
    answers = 0
    for item_id in ("chapter_0", "chapter_1"):
        before = etree.fromstring(original.get_item_with_id(item_id).content)
        after = etree.fromstring(translated.get_item_with_id(item_id).content)
        blocks = [f"{XHTML}h1", f"{XHTML}p"]
        assert [e.get("class") for e in after.iter(*blocks)] == [e.get("class") for e in before.iter(*blocks)]
        # bilingual: each source text stays as it was; a <br/> and the model's answer (or, for a flagged line, its
        # source) follow it
        for old, new in zip(before.iter(*blocks), after.iter(*blocks), strict=True):
            assert "".join(new.itertext()).startswith("".join(old.itertext()).rstrip())
            answers += len(new.findall(f"{XHTML}br"))
    assert answers >= chunks


def test_in_process_game_and_tool_formats_keep_their_structure_and_codes(
    tiny_gguf: Path, tmp_path: Path, translate_cli: Any, recorder: Any
) -> None:
    import openpyxl
    import polib

    game = tmp_path / "game"
    (game / "data").mkdir(parents=True)
    say = [
        {"code": 401, "indent": 0, "parameters": ["\\C[3]村長\\C[0]：\\N[1]さん！"]},
        {"code": 102, "indent": 0, "parameters": [["はい", "いいえ"], 1, 0, 2, 0]},
        {"code": 0, "indent": 0, "parameters": []},
    ]
    (game / "data" / "Map001.json").write_text(
        json.dumps({"displayName": "村", "events": [None, {"id": 1, "pages": [{"list": say}]}]}, ensure_ascii=False),
        encoding="utf-8",
    )
    system = {"gameTitle": "勇者", "terms": {"messages": {"obtainGold": "%1\\Gを得た！"}}}
    (game / "data" / "System.json").write_text(json.dumps(system, ensure_ascii=False), encoding="utf-8")
    (game / "img").mkdir()
    (game / "img" / "face.png").write_bytes(b"\x89PNG face")
    (game / "tl.rpy").write_text(
        'translate chinese start_1:\n\n    # e "{i}やあ{/i}、[name]。"\n    e "{i}やあ{/i}、[name]。"\n',
        encoding="utf-8",
    )
    catalog = polib.POFile()
    catalog.append(polib.POEntry(msgid="はじめる", occurrences=[("menu.py", "3")]))
    catalog.save(str(game / "menu.po"))
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["src", "dst"], ["剣", None]):
        sheet.append(row)
    book.save(str(game / "items.xlsx"))
    (game / "notes.md").write_text("# 冒険\n\n`code` と[地図](maps/1.png)\n", encoding="utf-8")
    result = translate_cli(game, "--engine", "llamacpp", "--model", tiny_gguf, *ENGINE_OPTIONS, *SMALL)
    assert result.exit_code == 0, result.output
    out = tmp_path / "game-zh"
    assert recorder.generations  # every text went through the model
    assert (out / "img" / "face.png").read_bytes() == b"\x89PNG face"
    commands = json.loads((out / "data" / "Map001.json").read_text(encoding="utf-8"))["events"][1]["pages"][0]["list"]
    assert [c["code"] for c in commands] == [401, 102, 0] and len(commands[1]["parameters"][0]) == 2
    codes = re.compile(r"\\[A-Za-z]+\[\d+\]|\\[{}G]")
    assert codes.findall(commands[0]["parameters"][0]) == ["\\C[3]", "\\C[0]", "\\N[1]"]
    gold = json.loads((out / "data" / "System.json").read_text(encoding="utf-8"))["terms"]["messages"]["obtainGold"]
    assert "%1" in gold and "\\G" in gold
    tl = (out / "tl.rpy").read_text(encoding="utf-8").splitlines()
    assert tl[:3] == ["translate chinese start_1:", "", '    # e "{i}やあ{/i}、[name]。"']
    assert tl[3].startswith('    e "') and "{i}" in tl[3] and "[name]" in tl[3]
    entries = list(polib.pofile(str(out / "menu.po")))
    assert [(e.msgid, e.occurrences) for e in entries] == [("はじめる", [("menu.py", "3")])]
    rows = list(openpyxl.load_workbook(str(out / "items.xlsx")).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert rows[0] == ("src", "dst") and rows[1][0] == "剣" and rows[1][1]
    markdown = (out / "notes.md").read_text(encoding="utf-8").splitlines()
    assert markdown[0].startswith("# ") and markdown[1] == ""
    assert "`code`" in markdown[2] and "](maps/1.png)" in markdown[2]  # restored, or the source line kept


def test_in_process_json_tool_formats_stay_valid(tiny_gguf: Path, tmp_path: Path, translate_cli: Any) -> None:
    folder = tmp_path / "tools"
    folder.mkdir()
    mtool = {"おはよう": "おはよう", "\\C[2]剣\\C[0]を手に入れた": "\\C[2]剣\\C[0]を手に入れた"}
    paratranz = [{"key": "a", "original": "宝箱だ！", "translation": "", "stage": 0}]
    vnt = [{"name": "美咲", "message": "「待って」"}, {"message": "雨だった。"}]
    trans = {"project": {"files": {"data/Items.json": {"data": [["薬草", None]], "context": [["Items/1/name"]]}}}}
    for name, value in (("ManualTransFile.json", mtool), ("para.json", paratranz), ("vnt.json", vnt)):
        (folder / name).write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")
    (folder / "game.trans").write_text(json.dumps(trans, ensure_ascii=False), encoding="utf-8")
    result = translate_cli(folder, "--engine", "llamacpp", "--model", tiny_gguf, *ENGINE_OPTIONS, *SMALL)
    assert result.exit_code == 0, result.output
    out = tmp_path / "tools-zh"
    written_mtool = json.loads((out / "ManualTransFile.json").read_text(encoding="utf-8"))
    assert list(written_mtool) == list(mtool)
    assert all("\\C[2]" in v and "\\C[0]" in v for k, v in written_mtool.items() if "\\C" in k)  # or the source kept
    written_para = json.loads((out / "para.json").read_text(encoding="utf-8"))
    assert [{k: v for k, v in e.items() if k != "translation"} for e in written_para] == [
        {k: v for k, v in e.items() if k != "translation"} for e in paratranz
    ]
    assert written_para[0]["translation"]
    written_vnt = json.loads((out / "vnt.json").read_text(encoding="utf-8"))
    assert [sorted(item) for item in written_vnt] == [sorted(item) for item in vnt]
    rows = json.loads((out / "game.trans").read_text(encoding="utf-8"))["project"]["files"]["data/Items.json"]
    assert (
        rows["data"][0][0] == "薬草" and isinstance(rows["data"][0][1], str) and rows["context"] == [["Items/1/name"]]
    )
