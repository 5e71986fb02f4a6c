"""Every input kind through the echo engine in-process (its answer is its input), so structure is checked exactly:
the output opens in the same library, has the same structure, and every text was translated once, in order."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pysubs2
from ebooklib import epub
from lxml import etree

XHTML = "{http://www.w3.org/1999/xhtml}"


def test_shift_jis_novel_comes_back_line_for_line(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = files.novel(tmp_path / "neko.txt", "shift_jis")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    output = tmp_path / "neko.zh.txt"
    # UTF-8 out, the source's CRLF line ends, blank lines and ideographic-space indentation kept
    assert output.read_bytes() == "\r\n".join(files.novel_lines).encode("utf-8") + b"\r\n"
    lines = [line.strip("\u3000") for line in files.novel_lines if line]
    assert recorder.texts == lines  # each line once, in order (one slot: one section)
    assert "read as Shift_JIS (cp932)" in result.output
    assert "5 chunks (0 from cache), 5 generations" in result.output
    assert not list(tmp_path.glob("*.sakura-cache.jsonl"))  # removed after success


def test_previous_chunk_is_the_context_and_sections_run_side_by_side(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    lines = ["一つ目の文。", "二つ目の文。", "三つ目の文。", "四つ目の文。"]
    source = files.novel(tmp_path / "four.txt", "utf-8", lines)
    assert translate_cli(source, *echo_args, "--slots", "2").exit_code == 0
    context = {
        g.text: next((m["content"] for m in g.messages if m["role"] == "assistant"), None) for g in recorder.generations
    }
    # two sections of two chunks: each section starts without context, its second chunk has the first's answer
    assert context == {lines[0]: None, lines[1]: lines[0], lines[2]: None, lines[3]: lines[2]}


def test_epub_keeps_markup_images_styles_and_toc(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = files.epub(tmp_path / "neko.epub")
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    output = tmp_path / "neko.zh.epub"
    original, translated = epub.read_epub(str(source)), epub.read_epub(str(output))
    assert [(i.get_name(), i.media_type) for i in translated.get_items()] == [
        (i.get_name(), i.media_type) for i in original.get_items()
    ]
    assert translated.spine == original.spine
    assert [link.title for link in translated.toc] == [link.title for link in original.toc]
    assert translated.get_item_with_id("image").get_content() == files.png()
    assert translated.get_item_with_id("style").get_content() == files.css
    with zipfile.ZipFile(output) as archive:
        first = archive.infolist()[0]
        assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
        chapter = archive.read("EPUB/text/chapter1.xhtml")
    with zipfile.ZipFile(source) as archive:
        source_root = etree.fromstring(archive.read("EPUB/text/chapter1.xhtml"))
    root = etree.fromstring(chapter)
    head = root.find(f"{XHTML}head")
    assert head.find(f"{XHTML}link").get("rel") == "stylesheet"
    assert etree.tostring(head) == etree.tostring(source_root.find(f"{XHTML}head"))
    assert root.find(f".//{XHTML}img").get("src") == "../images/cat.png"
    assert [p.get("class") for p in root.iter(f"{XHTML}p")][:2] == ["text", "text"]
    assert paragraphs(translated) == paragraphs(original, ruby=False)
    body_texts = [text for title, paras in files.chapters for text in (title, *paras)]
    body_texts.insert(3, "吾輩は猫だ。")  # the ruby paragraph, without its reading
    assert recorder.texts == body_texts
    assert root.find(f".//{XHTML}rt").text is None  # the reading of a translated ruby is removed


def paragraphs(book: Any, ruby: bool = True) -> list[str]:
    """The text of every heading and paragraph of the book's chapters, in spine order."""
    texts = []
    for item_id, _ in book.spine:
        item = book.get_item_with_id(item_id)
        if isinstance(item, epub.EpubNav):
            continue
        root = etree.fromstring(item.content)  # the bytes in the book, not ebooklib's rebuilt page
        for element in root.iter(f"{XHTML}h1", f"{XHTML}p"):
            if not ruby:
                for rt in element.iter(f"{XHTML}rt"):
                    rt.text = None
            texts.append("".join(element.itertext()))
    return [text.strip() for text in texts if text.strip()]


def test_epub_bilingual_keeps_the_source_before_each_translation(
    tmp_path: Path, files: Any, translate_cli: Any, echo_args: tuple[str, ...]
) -> None:
    source = files.epub(tmp_path / "neko.epub", ruby=False)
    result = translate_cli(source, *echo_args, "--bilingual", "-o", tmp_path / "out.epub")
    assert result.exit_code == 0, result.output
    translated = epub.read_epub(str(tmp_path / "out.epub"))
    texts = paragraphs(translated)
    assert texts == [text + text for text in paragraphs(epub.read_epub(str(source)))]  # source, <br/>, translation
    assert [link.title for link in translated.toc] == [title for title, _ in files.chapters]


def test_epub_titles_and_toc_only_with_titles(
    tmp_path: Path, files: Any, translate_cli: Any, echo_args: tuple[str, ...]
) -> None:
    # Simplified Chinese in the book: the Traditional copy shows which texts went through translation
    chapters = [("第一章　头发", ["吾輩は猫である。"]), ("第二章　书生", ["名前はまだ無い。"])]
    source = files.epub(tmp_path / "book.epub", chapters, ruby=False, title="猫的书")
    for flags, converted in (((), False), (("--titles",), True)):
        result = translate_cli(source, *echo_args, "--traditional", "--overwrite", *flags)
        assert result.exit_code == 0, result.output
        book = epub.read_epub(str(tmp_path / "book.zh-Hant.epub"))
        toc = [link.title for link in book.toc]
        nav = etree.fromstring(book.get_item_with_id("nav").content)
        nav_texts = ["".join(a.itertext()) for a in nav.iter(f"{XHTML}a")]
        chapter = etree.fromstring(book.get_item_with_id("chapter_0").content)
        page_title = chapter.find(f"{XHTML}head/{XHTML}title").text
        with zipfile.ZipFile(tmp_path / "book.zh-Hant.epub") as archive:
            ncx = etree.fromstring(archive.read("EPUB/toc.ncx"))
        ncx_texts = [e.text for e in ncx.iter("{http://www.daisy.org/z3986/2005/ncx/}text")]
        found = (book.title, toc, nav_texts, page_title, ncx_texts)
        titles = ["第一章　頭髮", "第二章　書生"] if converted else ["第一章　头发", "第二章　书生"]
        book_title = "貓的書" if converted else "猫的书"
        assert found == (book_title, titles, titles, titles[0], [book_title, *titles])
        assert paragraphs(book)[0] == "第一章　頭髮"  # the body always


def test_subtitles_keep_timings_styles_and_tags(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    for suffix in (".ass", ".srt", ".vtt"):
        recorder.generations.clear()
        source = files.subtitles(tmp_path / f"episode{suffix}")
        result = translate_cli(source, *echo_args)
        assert result.exit_code == 0, result.output
        original = pysubs2.load(str(source))
        translated = pysubs2.load(str(tmp_path / f"episode.zh{suffix}"))
        assert [(e.start, e.end, e.style, e.type) for e in translated] == [
            (e.start, e.end, e.style, e.type) for e in original
        ]
        assert [e.text for e in translated] == [e.text for e in original]  # line breaks and tags in place
        sent = [e.text.removeprefix(r"{\an8}") for e in original if not e.is_comment]
        assert sorted(recorder.texts) == sorted(sent)  # each once (two sections, side by side)
        if suffix == ".ass":
            assert translated.styles["Sign"].fontsize == 30
            assert translated[1].text.startswith(r"{\an8}")


def test_subtitles_bilingual_and_traditional(
    tmp_path: Path, files: Any, translate_cli: Any, echo_args: tuple[str, ...]
) -> None:
    import pysubs2

    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=0, end=1000, text="这是简体中文的头发"))
    subs.save(str(tmp_path / "zh.srt"))
    result = translate_cli(tmp_path / "zh.srt", *echo_args, "--bilingual", "--traditional")
    assert result.exit_code == 0, result.output
    assert pysubs2.load(str(tmp_path / "zh.zh.srt"))[0].text == r"这是简体中文的头发\N这是简体中文的头发"
    # the source line stays as it is; only the translation is converted
    assert pysubs2.load(str(tmp_path / "zh.zh-Hant.srt"))[0].text == r"这是简体中文的头发\N這是簡體中文的頭髮"


def test_galtransl_script_names_through_the_glossary(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = files.galtransl(tmp_path / "script.json")
    glossary = tmp_path / "names.txt"
    glossary.write_text("佐藤->佐藤 #主人公\n先輩\t前辈\n", encoding="utf-8")
    # an echo applies no glossary term: that check is off here (tests/test_checks.py makes it fire)
    result = translate_cli(source, *echo_args, "--no-check", "glossary", "--glossary", glossary, "--slots", "1")
    assert result.exit_code == 0, result.output
    translated = json.loads((tmp_path / "script.zh.json").read_text(encoding="utf-8"))
    expected = [dict(item) for item in files.galtransl_script]
    expected[2]["name"] = "前辈"
    assert translated == expected  # echoed messages, names from the glossary, other keys kept
    assert recorder.texts[0] == "佐藤「「おはようございます、先輩」」"
    assert recorder.texts[2] == "先輩「一行目\\n二行目」"  # GalTransl's literal \n inside a message
    assert "names kept untranslated (add them to a glossary to translate them): 謎の声" in result.output
    # only the entries whose source occurs in the chunk are sent with it
    users = [generation.user for generation in recorder.generations]
    assert "佐藤->佐藤 #主人公\n先輩->前辈\n" in users[0]
    assert "先輩->前辈" in users[2] and "佐藤->" not in users[2]
    assert "->" not in users[1] and "->" not in users[3]
