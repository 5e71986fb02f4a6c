"""The checks (sakura_translate.checks) and the cascade they drive, through the reference engine scripted to answer
as a translator that leaves kana, drops or adds a line, degenerates, skips a glossary term or mangles markup."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner
from sakura_echo.scripted import ReferenceEngine
from sakura_translate.checks import CheckSettings, Reason, check_chunk, check_line

from sakura_core import SamplingParams, hookimpl
from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import GlossaryEntry

KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa]")
#: Answers a line as a translator would: kana become a Chinese character, so nothing Japanese is left.
Translate = Callable[[str, SamplingParams], str]


def translated(line: str) -> str:
    return KANA.sub("的", line)


def sources_in(prompt: str) -> list[str]:
    """The text a v1.0 prompt asks to translate: the last user turn, after its last full-width colon."""
    user = prompt.rpartition("<|im_start|>user\n")[2].partition("<|im_end|>")[0]
    return user.rpartition("：")[2].split("\n")


def run_scripted(
    recorder: Any, answer: Callable[[list[str], SamplingParams], list[str]], *args: str | Path
) -> click.testing.Result:
    """``sakura translate ARGS`` through the reference engine whose answer to a chunk's lines is ``answer``'s."""

    class Scripted(ReferenceEngine):
        name: ClassVar[str] = "scripted"

        def answer_for(self, prompt: str, params: SamplingParams) -> str:
            return "\n".join(answer(sources_in(prompt), params))

    class Plugin:
        @hookimpl
        def register_engines(self, register: Callable[[type], None]) -> None:
            register(Scripted)

    registry = PluginRegistry.create(plugins=[("recorder", recorder), ("scripted", Plugin())])
    engine = ("--engine", "scripted", "--model", "sakura-scripted-v1.0", "--greedy", "--slots", "1")
    return CliRunner().invoke(cli, ["translate", *map(str, args), *engine], obj=CliState(registry))


def per_line(script: Translate) -> Callable[[list[str], SamplingParams], list[str]]:
    return lambda lines, params: [script(line, params) for line in lines]


LINES = ["吾輩は猫である。", "名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "ここで始めて人間を見た。"]


def novel(tmp_path: Path, files: Any, lines: list[str] = LINES) -> Path:
    return files.novel(tmp_path / "neko.txt", "utf-8", lines)


def output_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "neko.zh.txt").read_bytes().decode().split("\r\n")[:-1]


def report_of(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --- each check fires on its own ---------------------------------------------------------------------------------

NO_GLOSSARY: list[GlossaryEntry] = []


@pytest.mark.parametrize(
    ("source", "output", "reason"),
    [
        ("吾輩は猫である。", "我是猫である。", Reason.KANA),
        ("吾輩は猫である。", "我是猫。안녕", Reason.HANGUL),
        ("ああ、そうか。", "啊，" + "是这样" * 8, Reason.DEGENERATION),
        ("吾輩は猫である。", "吾輩は猫である。", Reason.UNTRANSLATED),
        ("先輩が来た。", "学长来了。", Reason.GLOSSARY),
        (r"\C[3]先輩\C[0]が来た。", r"C3前辈C0来了。", Reason.MARKUP),
        (r"{\i1}先輩{\i0}が来た。", r"{\i1}前辈来了。{\i0}", None),  # the same codes, moved: allowed
        (r"{\i1}先輩{\i0}が来た。", r"前辈来了。", Reason.MARKUP),
        ("<i>先輩</i>が来た。", "<b>前辈</b>来了。", Reason.MARKUP),
    ],
)
def test_each_check_fires(source: str, output: str, reason: Reason | None) -> None:
    glossary = [GlossaryEntry(src="先輩", dst="前辈")]
    found = check_line(source, output, glossary, CheckSettings())
    assert found == ([] if reason is None else [Reason.KANA, reason] if reason == Reason.UNTRANSLATED else [reason])
    if reason is not None:  # and it can be turned off
        assert reason not in check_line(source, output, glossary, CheckSettings(disabled=frozenset({reason})))


def test_glossary_names_do_not_count_as_kana_and_a_threshold_allows_a_little() -> None:
    names = [GlossaryEntry(src="アリス", dst="アリス")]
    assert check_line("アリスが来た。", "アリス来了。", names, CheckSettings()) == []
    assert check_line("アリスが来た。", "アリス来了。", NO_GLOSSARY, CheckSettings()) == [Reason.KANA]
    long = "他说了很多话，然后慢慢地走回了自己的房间の。"
    assert check_line("彼は部屋に戻った。", long, NO_GLOSSARY, CheckSettings(kana_threshold=0.1)) == []
    # a kanji-only line may come back as it is; a run the source has is no degeneration
    assert check_line("第一章", "第一章", NO_GLOSSARY, CheckSettings()) == []
    assert check_line("……" * 12, "……" * 12, NO_GLOSSARY, CheckSettings()) == []


def test_a_chunk_fails_as_a_whole_on_its_line_count_or_the_token_limit() -> None:
    settings = CheckSettings()
    assert check_chunk(["a", "b"], ["x"], reached_max_tokens=False, glossary=[], settings=settings) == {
        0: [Reason.LINE_COUNT],
        1: [Reason.LINE_COUNT],
    }
    assert check_chunk(["a"], ["x"], reached_max_tokens=True, glossary=[], settings=settings) == {
        0: [Reason.DEGENERATION]
    }
    assert check_chunk(["a", "b"], ["x", "y"], reached_max_tokens=False, glossary=[], settings=settings) == {}


# --- the cascade, end to end -------------------------------------------------------------------------------------


def test_kana_left_is_retried_with_a_higher_frequency_penalty_and_recovers(
    tmp_path: Path, files: Any, recorder: Any
) -> None:
    def lazy_first(line: str, params: SamplingParams) -> str:
        return line if params.frequency_penalty == 0 and "猫" in line else translated(line)

    result = run_scripted(recorder, per_line(lazy_first), novel(tmp_path, files), "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert output_lines(tmp_path) == [translated(line) for line in LINES]
    report = report_of(tmp_path)
    assert report["files"][0]["flagged"] == [] and report["stats"]["line_retries"] == 1
    assert [g.messages == recorder.generations[0].messages for g in recorder.generations] == [True, True]
    assert "0 lines flagged" in result.output


def test_a_line_that_keeps_failing_is_split_out_kept_in_the_source_and_reported(
    tmp_path: Path, files: Any, recorder: Any
) -> None:
    def stubborn(line: str, params: SamplingParams) -> str:
        return "我是" + line if "見当" in line else translated(line)  # kana left, however asked

    result = run_scripted(recorder, per_line(stubborn), novel(tmp_path, files), "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    expected = [translated(line) for line in LINES]
    expected[2] = LINES[2]
    assert output_lines(tmp_path) == expected
    [flag] = report_of(tmp_path)["files"][0]["flagged"]
    assert flag == {
        "file": str(tmp_path / "neko.txt"),
        "position": 3,
        "source": LINES[2],
        "output": "我是" + LINES[2],
        "reasons": ["kana", "untranslated"],
    }
    assert f"line 3 kept in the source [kana, untranslated]: {LINES[2]} → 我是{LINES[2]}" in result.output
    assert "1 lines flagged (kana 1, untranslated 1)" in result.output
    assert report_of(tmp_path)["flagged_by_reason"] == {"kana": 1, "untranslated": 1}


@pytest.mark.parametrize("change", ["drop", "add"])
def test_a_reply_with_a_line_dropped_or_added_is_split_and_recovers(
    change: str, tmp_path: Path, files: Any, recorder: Any
) -> None:
    def miscounted(lines: list[str], params: SamplingParams) -> list[str]:
        out = [translated(line) for line in lines]
        if len(lines) > 1:
            return out[:-1] if change == "drop" else [*out, "多出来的一行"]
        return out

    result = run_scripted(recorder, miscounted, novel(tmp_path, files), "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert output_lines(tmp_path) == [translated(line) for line in LINES]
    assert report_of(tmp_path)["files"][0]["flagged"] == []


def test_a_degenerating_line_is_retried_then_kept(tmp_path: Path, files: Any, recorder: Any) -> None:
    def loops(line: str, params: SamplingParams) -> str:
        return "哈" * 2000 if "名前" in line else translated(line)

    result = run_scripted(recorder, per_line(loops), novel(tmp_path, files), "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert output_lines(tmp_path)[1] == LINES[1]
    [flag] = report_of(tmp_path)["files"][0]["flagged"]
    assert (flag["position"], flag["reasons"]) == (2, ["degeneration"])
    alone = [g for g in recorder.generations if sources_in(g.messages[-1]["content"]) == [LINES[1]]]
    assert len(alone) == 3 and all(g.finish_reason == "length" for g in alone)  # 0, then 0.05 and 0.2


def test_hangul_and_a_skipped_glossary_term_are_flagged(tmp_path: Path, files: Any, recorder: Any) -> None:
    lines = ["先輩が来た。", "おはよう。"]
    glossary = tmp_path / "glossary.txt"
    glossary.write_text("先輩->前辈\n", encoding="utf-8")

    def careless(line: str, params: SamplingParams) -> str:
        return "学长来了。" if "先輩" in line else "早上好안녕"

    source = novel(tmp_path, files, lines)
    result = run_scripted(recorder, per_line(careless), source, "-g", glossary, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    flagged = report_of(tmp_path)["files"][0]["flagged"]
    assert [(f["position"], f["reasons"]) for f in flagged] == [(1, ["glossary"]), (2, ["hangul"])]
    assert output_lines(tmp_path) == lines


def test_mangled_control_codes_in_a_galtransl_script_recover_or_are_flagged(tmp_path: Path, recorder: Any) -> None:
    script = [{"name": "先輩", "message": r"\C[3]こんにちは\C[0]、元気？"}, {"message": "さようなら。"}]
    source = tmp_path / "script.json"
    source.write_text(json.dumps(script, ensure_ascii=False), encoding="utf-8")

    def mangles(line: str, params: SamplingParams) -> str:
        out = translated(line)
        return out.replace("\\C[3]", "C3") if params.frequency_penalty == 0 else out

    result = run_scripted(recorder, per_line(mangles), source, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    messages = [item["message"] for item in json.loads((tmp_path / "script.zh.json").read_text(encoding="utf-8"))]
    assert messages[0].startswith(r"\C[3]") and report_of(tmp_path)["files"][0]["flagged"] == []

    def always_mangles(line: str, params: SamplingParams) -> str:
        return translated(line).replace("\\C[3]", "C3")

    recorder.generations.clear()
    report = tmp_path / "report.json"
    result = run_scripted(recorder, per_line(always_mangles), source, "--report", report, "--overwrite")
    assert result.exit_code == 0, result.output
    [flag] = report_of(tmp_path)["files"][0]["flagged"]
    assert flag["reasons"] == ["markup"] and flag["output"].startswith("先輩「C3")


# --- parity with books.fishhawk.top's worker: half-width digits, what precedes a chunk ----------------------------


def test_full_width_digits_are_sent_half_width_unless_kept(tmp_path: Path, files: Any, recorder: Any) -> None:
    lines = ["第１２話、２０２４年です。"]
    source = novel(tmp_path, files, lines)
    result = run_scripted(recorder, per_line(lambda line, params: translated(line)), source)
    assert result.exit_code == 0, result.output
    assert [sources_in(g.messages[-1]["content"]) for g in recorder.generations] == [["第12話、2024年です。"]]
    assert output_lines(tmp_path) == [translated("第12話、2024年です。")]
    recorder.generations.clear()
    result = run_scripted(
        recorder, per_line(lambda line, params: translated(line)), source, "--keep-digits", "--overwrite"
    )
    assert result.exit_code == 0, result.output
    assert [sources_in(g.messages[-1]["content"]) for g in recorder.generations] == [lines]


@pytest.mark.parametrize("mode", ["translation", "source", "none"])
def test_context_is_the_previous_translation_its_source_or_nothing(
    mode: str, tmp_path: Path, files: Any, recorder: Any
) -> None:
    source = novel(tmp_path, files)
    result = run_scripted(recorder, per_line(lambda line, params: translated(line)), source, "--context", mode)
    assert result.exit_code == 0, result.output
    contexts = [
        next((m["content"] for m in g.messages if m["role"] == "assistant"), None) for g in recorder.generations
    ]
    before = {"translation": translated(LINES[0]), "source": LINES[0], "none": None}[mode]
    # one chunk of four lines: only a split would have a context; --chunk-chars 1 gives each line its own chunk
    assert contexts == [None]
    recorder.generations.clear()
    again = run_scripted(
        recorder,
        per_line(lambda line, params: translated(line)),
        source,
        "--context",
        mode,
        "--chunk-chars",
        "1",
        "--overwrite",
    )
    assert again.exit_code == 0, again.output
    contexts = [
        next((m["content"] for m in g.messages if m["role"] == "assistant"), None) for g in recorder.generations
    ]
    assert contexts[:2] == [None, before]
    assert output_lines(tmp_path) == [translated(line) for line in LINES]


def test_12_a_model_leaving_japanese_has_every_such_line_flagged(tmp_path: Path, files: Any, recorder: Any) -> None:
    lines = [f"{n}番目の文です。" for n in range(1, 21)]

    def half_japanese(line: str, params: SamplingParams) -> str:
        number = int(re.match(r"\d+", line).group(0))  # type: ignore[union-attr]
        return f"第{number}句です。" if number % 2 else f"第{number}句。"

    source = novel(tmp_path, files, lines)
    result = run_scripted(recorder, per_line(half_japanese), source, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    flagged = report_of(tmp_path)["files"][0]["flagged"]
    assert [flag["position"] for flag in flagged] == list(range(1, 21, 2))
    assert all(flag["reasons"] == ["kana"] for flag in flagged)
    assert "10 lines flagged (kana 10)" in result.output
    assert output_lines(tmp_path) == [line if n % 2 else f"第{n}句。" for n, line in enumerate(lines, start=1)]


def test_a_cache_from_before_the_split_is_translated_again(tmp_path: Path, files: Any, recorder: Any) -> None:
    from sakura_translate.cache import CachedChunk, ChunkCache

    source = novel(tmp_path, files, LINES[:2])
    script = per_line(lambda line, params: translated(line))
    assert run_scripted(recorder, script, source, "--keep-cache").exit_code == 0
    cache_file = tmp_path / "neko.zh.txt.sakura-cache.jsonl"
    (key,) = ChunkCache(cache_file).chunks
    # what an earlier version saved for a chunk whose answer had one line: kept whole, lines_match false
    cache_file.write_text(CachedChunk(key=key, translation="一行", lines_match=False).model_dump_json() + "\n")
    recorder.generations.clear()
    result = run_scripted(recorder, script, source, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(recorder.generations) == 1 and output_lines(tmp_path) == [translated(line) for line in LINES[:2]]


def test_a_script_speaker_kept_in_katakana_is_no_kana_left(tmp_path: Path, recorder: Any) -> None:
    script = [{"name": "アリス", "message": "おはよう。"}, {"name": "アリス", "message": "またね。"}]
    source = tmp_path / "script.json"
    source.write_text(json.dumps(script, ensure_ascii=False), encoding="utf-8")

    def keeps_the_name(line: str, params: SamplingParams) -> str:
        name, bracket, message = line.partition("「")
        return name + bracket + translated(message)

    result = run_scripted(recorder, per_line(keeps_the_name), source, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert report_of(tmp_path)["files"][0]["flagged"] == []
    assert len(recorder.generations) == 1  # one chunk, accepted at once
