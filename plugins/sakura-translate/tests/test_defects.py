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


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_5_an_srt_with_a_broken_timing_is_an_error_naming_the_line(tmp_path: Path, translate_cli: Any) -> None:
    import pysubs2

    subs = pysubs2.SSAFile()
    for number, text in enumerate(["おはよう", "こんにちは", "さようなら"]):
        subs.append(pysubs2.SSAEvent(start=number * 2000, end=number * 2000 + 1000, text=text))
    good = subs.to_string("srt")
    broken = good.replace("00:00:02,000 --> 00:00:03,000", "00:00:0x,000 --> 00:00:03,000")
    assert broken != good
    (tmp_path / "ep.srt").write_text(broken, encoding="utf-8")
    line = one_error_line(translate_cli(tmp_path / "ep.srt", *ECHO))
    assert "ep.srt:6: timing line '00:00:0x,000 --> 00:00:03,000' does not parse" in line
    assert "00:01:02,345 --> 00:01:04,000" in line
    assert not (tmp_path / "ep.zh.srt").exists()
    vtt = subs.to_string("vtt").replace("00:00:04.000 --> 00:00:05.000", "00:00:04 --> 00:00:05")
    (tmp_path / "ep.vtt").write_text(vtt, encoding="utf-8")
    assert "timing line '00:00:04 --> 00:00:05' does not parse" in one_error_line(
        translate_cli(tmp_path / "ep.vtt", *ECHO)
    )


def test_6_unwritable_outputs_are_found_before_generating(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    source = files.novel(tmp_path / "neko.txt", "utf-8")
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    line = one_error_line(translate_cli(source, *ECHO, "-o", tmp_path / "blocker" / "out.txt"))
    assert "out.txt: cannot be written" in line and "is a file and not a folder" in line
    line = one_error_line(translate_cli(source, *ECHO, "--report", tmp_path / "blocker" / "report.json"))
    assert "report.json: cannot be written" in line
    (tmp_path / "folder").mkdir()
    assert "is a folder" in one_error_line(translate_cli(source, *ECHO, "--report", tmp_path / "folder"))
    assert recorder.generations == [] and not (tmp_path / "neko.zh.txt").exists()
    # -o NEWDIR/ is a folder to create, even for one file
    result = translate_cli(source, *ECHO, "-o", f"{tmp_path / 'newdir'}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir" / "neko.txt").read_bytes() == source.read_bytes().decode("utf-8").encode()


def test_10_an_existing_output_is_kept_unless_overwrite(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    books = tmp_path / "books"
    books.mkdir()
    source = files.novel(books / "neko.txt", "utf-8", ["吾輩は猫である。"])
    proofread = books / "neko.zh.txt"
    proofread.write_text("我是猫（校对过）。\n", encoding="utf-8")
    line = one_error_line(translate_cli(source, *ECHO))
    assert "neko.zh.txt: exists" in line and "--overwrite" in line
    assert "（输出文件已存在，不会覆盖" in line  # in Chinese too, as the documentation is
    assert proofread.read_text(encoding="utf-8") == "我是猫（校对过）。\n" and recorder.generations == []
    # in a folder, the file already translated is kept and the others are translated
    out = tmp_path / "books-zh"
    out.mkdir()
    (out / "neko.txt").write_text("校对过\n", encoding="utf-8")
    files.novel(books / "new.txt", "utf-8", ["名前はまだ無い。"])
    result = translate_cli(books, *ECHO, "-o", out)
    assert result.exit_code == 0, result.output
    assert (out / "neko.txt").read_text(encoding="utf-8") == "校对过\n"
    assert (out / "new.txt").read_text(encoding="utf-8").strip() == "名前はまだ無い。"
    assert f"{out / 'neko.txt'}: exists, kept (pass --overwrite" in result.output
    assert not (out / "neko.zh.txt").exists()  # the earlier output beside its source is no source
    result = translate_cli(source, *ECHO, "--overwrite")
    assert result.exit_code == 0 and proofread.read_text(encoding="utf-8").strip() == "吾輩は猫である。"


def test_8_a_folder_leaves_out_other_json_earlier_outputs_and_excluded_files(
    tmp_path: Path, files: Any, translate_cli: Any, recorder: Any
) -> None:
    import json

    import pysubs2

    folder = tmp_path / "game"
    folder.mkdir()
    files.galtransl(folder / "script.json")
    (folder / "glossary.json").write_text(json.dumps({"先輩": "前辈"}, ensure_ascii=False), encoding="utf-8")
    (folder / "mtool.json").write_text(json.dumps([{"key": "value"}]), encoding="utf-8")
    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=0, end=1000, text="おはよう"))
    subs.save(str(folder / "op.srt"))
    subs.save(str(folder / "op.zh.srt"))  # written by an earlier run
    (folder / "drafts").mkdir()
    files.novel(folder / "drafts" / "draft.txt", "utf-8", ["下書き。"])
    result = translate_cli(folder, *ECHO, "--no-check", "glossary", "--exclude", "drafts/*")
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "game-zh").as_posix() for p in (tmp_path / "game-zh").rglob("*"))
    assert written == ["op.srt", "script.json"]
    assert "glossary.json: not a JSON file sakura translate knows" in result.output
    assert "mtool.json: not a JSON file sakura translate knows" in result.output
    assert "下書き。" not in recorder.texts
    # a single non-script JSON is still an error
    line = one_error_line(translate_cli(folder / "glossary.json", *ECHO))
    assert "not a JSON file sakura translate knows" in line


def test_7_server_addresses_as_users_type_them() -> None:
    from sakura_translate.backends import server_url

    assert server_url("127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert server_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080"
    assert server_url("https://example.org/sakura/v1/") == "https://example.org/sakura"
    assert server_url(" http://localhost:8080/ ") == "http://localhost:8080"


async def test_7_and_9_a_server_without_scheme_or_with_v1_and_a_wrong_key(
    app_server: Any, translate_process: Any, tmp_path: Path, files: Any
) -> None:
    from sakura_echo.engine import EchoEngine, EchoOptions

    from sakura_core.server.settings import ServerSettings

    engine = EchoEngine(EchoOptions(parallel=2))
    await engine.load("sakura-echo-v1.0")
    server = await app_server(engine, ServerSettings(api_key="right"))
    source = files.novel(tmp_path / "neko.txt", "utf-8", ["吾輩は猫である。"])
    checks_off = ECHO[-6:]
    code, _, stderr = await translate_process.run(source, "--server", server.url, "--api-key", "wrong", *checks_off)
    assert code == 2 and "refused the key (401); check --api-key or SAKURA_API_KEY" in stderr
    address = server.url.removeprefix("http://")
    for given in (address, f"{server.url}/v1"):
        code, stdout, stderr = await translate_process.run(
            source, "--server", given, "--api-key", "right", "--overwrite", *checks_off
        )
        assert code == 0, stderr
        assert f"via {server.url}," in stdout
    await engine.close()


def test_9_repeated_chunks_are_not_from_cache_and_the_progress_ends_at_100(
    tmp_path: Path, files: Any, translate_cli: Any, capsys: Any
) -> None:
    import asyncio

    from sakura_echo.engine import EchoEngine, EchoOptions
    from sakura_translate.backends import EngineBackend
    from sakura_translate.checks import CheckSettings, Reason
    from sakura_translate.pipeline import Settings
    from sakura_translate.run import Job, prepare, translate_files

    from sakura_core.plugins import PluginRegistry
    from sakura_core.types import SamplingParams

    lines = ["はい。", "吾輩は猫である。", "はい。", "名前はまだ無い。", "はい。"]
    source = files.novel(tmp_path / "neko.txt", "utf-8", lines)
    result = translate_cli(source, *ECHO)
    assert result.exit_code == 0, result.output
    assert "5 chunks (0 from cache, 2 repeated)" in result.output
    # the bar counts characters of the texts, as its total does: it ends at 100%, not above
    off = frozenset({Reason.KANA, Reason.UNTRANSLATED})
    settings = Settings(chunk_chars=20, params=SamplingParams(do_sample=False), checks=CheckSettings(disabled=off))
    job = Job(source=source, output=tmp_path / "bar.txt", settings=settings, progress=True)

    async def connect() -> EngineBackend:
        return await EngineBackend.load(EchoEngine(EchoOptions()), PluginRegistry.create(), "sakura-echo-v1.0", None)

    capsys.readouterr()
    asyncio.run(translate_files(job, prepare(job), connect))
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in bar and "25.0/25.0" in bar, bar


def test_10_utf16_without_bom_short_shift_jis_and_an_empty_file(
    tmp_path: Path, translate_cli: Any, recorder: Any
) -> None:
    cases = {
        "utf16.txt": "吾輩は猫である。\n名前はまだ無い。\n".encode("utf-16-le"),
        "short.txt": "はい。\r\n".encode("shift_jis"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        result = translate_cli(tmp_path / name, *ECHO)
        assert result.exit_code == 0, result.output
        translated = (tmp_path / name.replace(".txt", ".zh.txt")).read_text(encoding="utf-8")
        assert translated.split() == data.decode("utf-16-le" if "16" in name else "shift_jis").split()
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty.txt: has no text to translate" in one_error_line(translate_cli(tmp_path / "empty.txt", *ECHO))
    assert not (tmp_path / "empty.zh.txt").exists()


ASS_HEADER_COMMENTS = "; Script generated by Aegisub 3.2.2\n; http://www.aegisub.org/\n"


def test_4_ass_and_srt_keep_mid_line_tags_line_breaks_karaoke_and_the_header(
    tmp_path: Path, translate_cli: Any, recorder: Any
) -> None:
    import pysubs2

    subs = pysubs2.SSAFile()
    texts = [
        r"{\an8}普通の{\i1}斜体{\i0}です",
        r"{\c&H0000FF&}赤い{\c}文字です",
        r"一行目です\N二行目です",
        r"{\k20}か{\k30}ら{\k40}お{\k20}け",
        r"{\i1}全部斜体です{\i0}",
    ]
    for number, text in enumerate(texts):
        subs.append(pysubs2.SSAEvent(start=number * 2000, end=number * 2000 + 1500, text=text))
    ass = subs.to_string("ass").replace(
        "; Script generated by pysubs2\n; https://pypi.python.org/pypi/pysubs2\n", ASS_HEADER_COMMENTS
    )
    assert ASS_HEADER_COMMENTS in ass
    (tmp_path / "ep.ass").write_text(ass, encoding="utf-8")
    result = translate_cli(tmp_path / "ep.ass", *ECHO, "--slots", "1")
    assert result.exit_code == 0, result.output
    out = (tmp_path / "ep.zh.ass").read_text(encoding="utf-8")
    assert ASS_HEADER_COMMENTS in out and "pysubs2" not in out
    assert [event.text for event in pysubs2.SSAFile.from_string(out)] == texts
    assert not any("{\\k" in text or "からおけ" in text for text in recorder.texts)  # karaoke is not sent
    # SRT: an <i> inside a cue stays where it is, a two-line cue keeps its two lines
    srt = (
        "1\n00:00:01,000 --> 00:00:02,000\n普通の<i>斜体</i>です\n\n2\n00:00:03,000 --> 00:00:04,000\n一行目\n二行目\n"
    )
    (tmp_path / "ep.srt").write_text(srt, encoding="utf-8")
    result = translate_cli(tmp_path / "ep.srt", *ECHO)
    assert result.exit_code == 0, result.output
    assert "普通の<i>斜体</i>です\n" in (tmp_path / "ep.zh.srt").read_text(encoding="utf-8")
    assert "一行目\n二行目\n" in (tmp_path / "ep.zh.srt").read_text(encoding="utf-8")


VTT = """WEBVTT - 第一話
Kind: captions
Language: ja

NOTE 翻訳メモ：このブロックは残る


STYLE
::cue(.yellow) { color: yellow; }

intro
00:00:01.000 --> 00:00:03.000 align:start position:10% line:0 size:50%
<v 佐藤>おはようございます、先輩。</v>

00:00:04.000 --> 00:00:06.000
一行目です
<i>二行目</i>です

00:00:07.000 --> 00:00:08.000 align:end
<c.yellow>黄色い文字</c>
"""


def test_3_webvtt_keeps_settings_ids_header_notes_styles_and_voices(
    tmp_path: Path, translate_cli: Any, recorder: Any
) -> None:
    import pysubs2

    (tmp_path / "ep.vtt").write_text(VTT, encoding="utf-8")
    assert len(pysubs2.load(str(tmp_path / "ep.vtt"))) == 3  # what users' players read
    result = translate_cli(tmp_path / "ep.vtt", *ECHO, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ep.zh.vtt").read_text(encoding="utf-8") == VTT  # the echo's answer is its input
    assert recorder.texts == ["おはようございます、先輩。", r"一行目です\N<i>二行目</i>です", "黄色い文字"]
    result = translate_cli(tmp_path / "ep.vtt", *ECHO, "--bilingual", "-o", tmp_path / "bi.vtt")
    assert result.exit_code == 0, result.output
    assert "<v 佐藤>おはようございます、先輩。</v>\nおはようございます、先輩。\n" in (tmp_path / "bi.vtt").read_text(
        encoding="utf-8"
    )
