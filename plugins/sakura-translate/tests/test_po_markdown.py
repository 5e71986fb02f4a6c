"""gettext .po (made with polib) and Markdown through the echo engine: structure kept, code and links untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polib


def write_po(path: Path, translated: bool) -> Path:
    catalog = polib.POFile(wrapwidth=78)
    catalog.metadata = {"Project-Id-Version": "game 1.0", "Content-Type": "text/plain; charset=UTF-8"}
    entries = [
        polib.POEntry(msgid="ゲームを始める", occurrences=[("menu.py", "12")], comment="title menu"),
        polib.POEntry(msgid="%s のターン\n行動を選んでください", flags=["python-format"]),
        polib.POEntry(msgid="りんごが1個ある", msgid_plural="りんごが%d個ある", msgstr_plural={0: ""}),
        polib.POEntry(msgid="古い台詞", msgstr="旧台词", obsolete=True),
    ]
    for entry in entries:
        if translated and not entry.obsolete:
            if entry.msgid_plural:
                entry.msgstr_plural = {0: entry.msgid}  # one form: Chinese has no plural
            else:
                entry.msgstr = entry.msgid
        catalog.append(entry)
    catalog.save(str(path))
    return path


def test_po_msgstr_written_and_the_rest_kept(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = write_po(tmp_path / "ja.po", translated=False)
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    output = polib.pofile(str(tmp_path / "ja.zh.po"))
    assert recorder.texts == [
        "ゲームを始める",
        "%s のターン\\n行動を選んでください",
        "りんごが1個ある",
        "りんごが%d個ある",
    ]
    entries = {entry.msgid: entry for entry in output}
    assert entries["ゲームを始める"].msgstr == "ゲームを始める"
    assert entries["ゲームを始める"].occurrences == [("menu.py", "12")]
    assert entries["%s のターン\n行動を選んでください"].msgstr == "%s のターン\n行動を選んでください"
    assert "python-format" in entries["%s のターン\n行動を選んでください"].flags
    assert entries["りんごが1個ある"].msgstr_plural == {0: "りんごが1個ある"}
    assert entries["古い台詞"].obsolete and entries["古い台詞"].msgstr == "旧台词"
    assert output.metadata["Project-Id-Version"] == "game 1.0"
    # a catalogue whose translations are its sources comes back byte for byte
    done = write_po(tmp_path / "done.po", translated=True)
    assert translate_cli(done, *echo_args).exit_code == 0
    assert (tmp_path / "done.zh.po").read_bytes() == done.read_bytes()


MARKDOWN = """---
title: 旅の記録
tags: [旅, 日記]
---

# 第一章　出発

朝、`git clone` で[リポジトリ](https://example.org/repo "見出し")を取得した。

- 荷物をまとめる
- [ ] 切符を買う

> 旅は道連れ。

```python
print("こんにちは")  # コードはそのまま
```

    インデントされたコード

| 名前 | 説明 |
|------|------|
| 剣 | 強い武器 |

![地図](images/map.png)

[ref]: https://example.org/ページ
<div>生のHTML</div>
"""


def test_markdown_prose_sent_code_links_and_front_matter_kept(
    tmp_path: Path, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...]
) -> None:
    source = tmp_path / "travel.md"
    source.write_bytes(MARKDOWN.encode("utf-8"))
    result = translate_cli(source, *echo_args, "--slots", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "travel.zh.md").read_bytes() == source.read_bytes()
    assert recorder.texts == [
        "第一章　出発",
        '朝、`git clone` で[リポジトリ](https://example.org/repo "見出し")を取得した。',
        "荷物をまとめる",
        "切符を買う",
        "旅は道連れ。",
        "| 名前 | 説明 |",
        "| 剣 | 強い武器 |",
        "![地図](images/map.png)",
    ]


def test_markdown_link_targets_and_code_come_from_the_source() -> None:
    from sakura_translate.formats.markdown import _restore

    source = "`x = 1` と[説明](https://example.org/a)"
    assert _restore("`y = 2` 和[说明](https://example.org/b)", source) == "`x = 1` 和[说明](https://example.org/a)"
    assert _restore("和说明", source) is None  # lost: the caller keeps the source line
