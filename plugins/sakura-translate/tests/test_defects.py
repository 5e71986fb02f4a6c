"""Issue 21's numbered defects, each reproduced with a small file made as users' files are made."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ebooklib import epub
from lxml import etree

ECHO = ("--engine", "echo", "--model", "sakura-echo-v1.0", "--greedy", "--no-check", "kana")
ECHO += ("--no-check", "untranslated", "--chunk-chars", "1")
XHTML = "{http://www.w3.org/1999/xhtml}"


def cover_book(path: Path, files: Any) -> Path:
    """A book whose cover page is a manifest item marked ``properties="cover"``, in a subfolder."""
    book = epub.EpubBook()
    book.set_identifier("cover-book")
    book.set_title("猫")
    book.set_language("ja")
    image = epub.EpubImage(uid="cover-image", file_name="Images/cover.png", media_type="image/png")
    image.content = files.png()
    cover = epub.EpubHtml(title="表紙", file_name="Text/cover.xhtml", lang="ja", uid="cover-page")
    cover.content = '<html><body><p>表紙です。</p><img src="../Images/cover.png"/></body></html>'
    cover.properties = ["cover"]
    chapter = epub.EpubHtml(title="一", file_name="Text/one.xhtml", lang="ja", uid="one")
    chapter.content = "<html><body><p>吾輩は猫である。</p></body></html>"
    for item in (image, cover, chapter):
        book.add_item(item)
    book.toc = [epub.Link("Text/one.xhtml", "一", "one")]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [cover, "nav", chapter]
    epub.write_epub(str(path), book)
    with zipfile.ZipFile(path) as archive:
        assert b'properties="cover"' in archive.read("EPUB/content.opf")
    return path


def test_2_an_epub_with_a_cover_page_item_translates(tmp_path: Path, files: Any, translate_cli: Any) -> None:
    source = cover_book(tmp_path / "cover.epub", files)
    result = translate_cli(source, *ECHO)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "cover.zh.epub") as archive:
        pages = [etree.fromstring(archive.read(f"EPUB/Text/{name}.xhtml")) for name in ("cover", "one")]
    assert ["".join(page.find(f".//{XHTML}p").itertext()) for page in pages] == ["表紙です。", "吾輩は猫である。"]
    assert "2 chunks" in result.output  # the cover page's text was sent too


def test_11_a_translated_epub_says_it_is_chinese(tmp_path: Path, files: Any, translate_cli: Any) -> None:
    source = files.epub(tmp_path / "neko.epub")
    result = translate_cli(source, *ECHO, "--traditional")
    assert result.exit_code == 0, result.output
    for name, language in (("neko.zh.epub", "zh-CN"), ("neko.zh-Hant.epub", "zh-TW")):
        with zipfile.ZipFile(tmp_path / name) as archive:
            opf = etree.fromstring(archive.read("EPUB/content.opf"))
            page = etree.fromstring(archive.read("EPUB/text/chapter1.xhtml"))
        assert [e.text for e in opf.iter("{http://purl.org/dc/elements/1.1/}language")] == [language]
        assert page.get("lang") == page.get("{http://www.w3.org/XML/1998/namespace}lang") == language


def test_11_web_novel_ruby_is_not_sent(tmp_path: Path, files: Any, translate_cli: Any, recorder: Any) -> None:
    lines = ["｜吾輩《わがはい》は猫である。", "名前《なまえ》はまだ|無い《ない》。", "《》と括弧《かっこ》。"]
    source = files.novel(tmp_path / "ruby.txt", "utf-8", lines)
    result = translate_cli(source, *ECHO, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert recorder.texts == ["吾輩は猫である。", "名前はまだ無い。", "《》と括弧。"]
