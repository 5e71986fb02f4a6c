"""The parts on their own: chunking, glossaries, encodings, output paths, the resume cache, sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sakura_translate.cache import CachedChunk, ChunkCache
from sakura_translate.chunking import chunk_lines
from sakura_translate.encoding import decode_text
from sakura_translate.errors import InputError
from sakura_translate.glossary import Glossary, load_glossaries
from sakura_translate.paths import plan_files
from sakura_translate.pipeline import split_translation

from sakura_core.prompts import GlossaryEntry

NOVEL = "吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。\n"


def test_chunks_are_cut_at_line_ends_within_the_limit() -> None:
    lines = ["a" * 5, "b" * 5, "c" * 5, "d" * 20, "e"]
    assert chunk_lines(lines, 11) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert chunk_lines(lines, 12) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert chunk_lines(lines, 17) == [range(0, 3), range(3, 4), range(4, 5)]
    assert chunk_lines(lines, 1000) == [range(0, 5)]
    assert chunk_lines([], 512) == []
    texts = ["あ" * 100] * 12
    assert all(len("\n".join(texts[i] for i in r)) <= 512 for r in chunk_lines(texts, 512))


def test_the_three_glossary_formats(tmp_path: Path) -> None:
    (tmp_path / "sakura.txt").write_text("// comment\n佐藤->佐藤 #男主角\n先輩->前辈\n\n", encoding="utf-8")
    (tmp_path / "galtransl.txt").write_text("\\\\ comment\n魔法\t魔法\t专有名词\n先輩\t学长\n", encoding="utf-8")
    (tmp_path / "fishhawk.json").write_text(json.dumps({"猫": "猫咪", "書生": "书生"}, ensure_ascii=False))
    (tmp_path / "list.json").write_text(json.dumps([{"src": "吾輩", "dst": "咱", "info": "自称"}]))
    glossary = load_glossaries([tmp_path / n for n in ("sakura.txt", "galtransl.txt", "fishhawk.json", "list.json")])
    assert list(glossary.entries.values()) == [
        GlossaryEntry(src="佐藤", dst="佐藤", info="男主角"),
        GlossaryEntry(src="先輩", dst="学长"),  # a later definition replaces an earlier one
        GlossaryEntry(src="魔法", dst="魔法", info="专有名词"),
        GlossaryEntry(src="猫", dst="猫咪"),
        GlossaryEntry(src="書生", dst="书生"),
        GlossaryEntry(src="吾輩", dst="咱", info="自称"),
    ]
    assert [e.src for e in glossary.for_text("吾輩は猫である。先輩")] == ["先輩", "猫", "吾輩"]
    assert glossary.lookup("佐藤") == "佐藤" and glossary.lookup("佐") is None


def test_a_shift_jis_glossary_is_read(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_bytes("佐藤->佐藤\n魔法->魔法\n".encode("shift_jis"))
    assert load_glossaries([tmp_path / "names.txt"]).lookup("佐藤") == "佐藤"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a->b\nno arrow here\n", "bad.txt:2: cannot read glossary line 'no arrow here'"),
        ("a->\n", "bad.txt:1: glossary line 'a->' has an empty source or translation"),
        ("\tb\n", "bad.txt:1: glossary line"),
    ],
)
def test_a_glossary_line_that_does_not_parse_names_its_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.txt").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_glossaries([tmp_path / "bad.txt"])


def test_a_json_glossary_of_the_wrong_shape(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="glossary item 0"):
        load_glossaries([tmp_path / "bad.json"])
    (tmp_path / "bad.json").write_text('{"a": "b",\n}')
    with pytest.raises(InputError, match=r"bad\.json:2: not valid JSON"):
        load_glossaries([tmp_path / "bad.json"])


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (NOVEL.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + NOVEL.encode("utf-8"), "utf-8-sig"),
        (NOVEL.encode("shift_jis"), "cp932"),
        (NOVEL.encode("euc_jp"), "euc_jp"),
        (NOVEL.encode("utf-16"), "utf-16"),
        (NOVEL.encode("utf-32"), "utf-32"),
    ],
)
def test_common_japanese_encodings_are_detected(encoded: bytes, encoding: str) -> None:
    decoded = decode_text(encoded, Path("novel.txt"))
    assert (decoded.text.lstrip("\ufeff"), decoded.encoding) == (NOVEL, encoding)


def test_a_forced_encoding_wins() -> None:
    data = NOVEL.encode("euc_jp")
    assert decode_text(data, Path("n.txt"), "euc-jp").text == NOVEL
    with pytest.raises(InputError, match=r"n\.txt: not valid cp932 \(byte"):
        decode_text(NOVEL.encode("utf-16-le"), Path("n.txt"), "shift_jis")


def test_answers_are_split_into_lines_without_blank_ones() -> None:
    assert split_translation("\n第一行  \n\n第二行\n") == ["第一行", "第二行"]
    assert split_translation("") == []


def test_output_paths(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("x")
    [plan] = plan_files(tmp_path / "book.txt", None)
    assert (plan.output.name, plan.traditional.name) == ("book.zh.txt", "book.zh-Hant.txt")
    [plan] = plan_files(tmp_path / "book.txt", tmp_path / "out.txt")
    assert plan.traditional.name == "out.zh-Hant.txt"
    with pytest.raises(InputError, match="would overwrite the input"):
        plan_files(tmp_path / "book.txt", tmp_path / "book.txt")
    folder = tmp_path / "season"
    (folder / "extra").mkdir(parents=True)
    for name in ("01.ass", "extra/02.srt", "notes.rtf", ".hidden.srt", "01.ass.sakura-cache.jsonl", "names.txt"):
        (folder / name).write_text("x")
    plans = plan_files(folder, None, skip=(folder / "names.txt",))
    assert [(p.source.relative_to(folder).as_posix(), p.output.relative_to(tmp_path).as_posix()) for p in plans] == [
        ("01.ass", "season-zh/01.ass"),
        ("extra/02.srt", "season-zh/extra/02.srt"),
    ]
    with pytest.raises(InputError, match="is the input folder"):
        plan_files(folder, folder)


def test_the_cache_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "book.zh.txt.sakura-cache.jsonl"
    cache = ChunkCache(path)
    cache.put(CachedChunk(key="a", translation="一", lines_match=True, completion_tokens=3))
    cache.close()
    with path.open("a", encoding="utf-8") as torn:  # a kill in the middle of writing the next record
        torn.write('{"key": "b", "transla')
    cache = ChunkCache(path)
    assert list(cache.chunks) == ["a"]
    cache.put(CachedChunk(key="b", translation="二", lines_match=False))
    cache.close()
    assert {k: c.translation for k, c in ChunkCache(path).chunks.items()} == {"a": "一", "b": "二"}


def test_an_empty_glossary_selects_nothing() -> None:
    assert Glossary().for_text("anything") == []


def test_model_output_that_xml_cannot_hold_is_dropped_from_an_epub_page() -> None:
    from lxml import etree
    from sakura_translate.formats.epub import text_runs

    root = etree.fromstring(b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>a</p><p>b</p></body></html>')
    first, second = text_runs(root[0])
    first.replace("\x00译\x1b文\ufffe")
    second.append_after("\x07译文")
    assert etree.tostring(root[0], encoding="unicode").endswith("<p>译文</p><p>b<br/>译文</p></body>")


def test_a_write_the_disk_refuses_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    from sakura_translate.atomic import write_atomic
    from sakura_translate.errors import GenerationError

    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(GenerationError, match=r"cannot write .*out\.txt \(.*\); free the disk or fix its permissions"):
        write_atomic(tmp_path / "file" / "out.txt", b"data")
