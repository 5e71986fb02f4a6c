"""``sakura glossary`` on a generated book whose names are known: found, counted, sorted, and read back by
``sakura translate --glossary`` in each of the three glossary formats."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sakura_translate.glossary import load_glossaries

from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry

#: The book's recurring names and terms, and how each appears in the text.
NAMES = {"エリザベート": "エリザベート", "美咲": "美咲さん", "蒼真": "蒼真くん", "魔導師団": "魔導師団"}
FILLER = ["空は青かった。", "風が吹いていた。", "遠くで鐘が鳴った。", "道は長く続いていた。"]
TEMPLATES = [
    "{0}は{1}と一緒に歩いた。",
    "「{0}、待って」と{1}が言った。",
    "{0}の前に{1}が立っていた。",
]


def write_book(path: Path) -> dict[str, int]:
    """A book of random sentences about the names; how many times each name was written."""
    rng = random.Random(7)
    counts = dict.fromkeys(NAMES, 0)
    lines = []
    for _ in range(60):
        first, second = rng.sample(list(NAMES), 2)
        counts[first] += 1
        counts[second] += 1
        lines.append("　" + rng.choice(TEMPLATES).format(NAMES[first], NAMES[second]) + rng.choice(FILLER))
    lines.insert(0, "　ヨハンが一度だけ現れた。")  # once: below --min-count
    path.write_bytes("\r\n".join(lines).encode("shift_jis") + b"\r\n")
    return counts


@pytest.fixture
def sakura() -> Callable[..., click.testing.Result]:
    def invoke(*args: str | Path) -> click.testing.Result:
        return CliRunner().invoke(cli, list(map(str, args)), obj=CliState(PluginRegistry.create()))

    return invoke


def test_names_found_counted_and_sorted(tmp_path: Path, sakura: Any) -> None:
    counts = write_book(tmp_path / "book.txt")
    result = sakura("glossary", tmp_path / "book.txt", "-o", tmp_path / "names.json", "--min-count", "3")
    assert result.exit_code == 0, result.output
    items = json.loads((tmp_path / "names.json").read_text(encoding="utf-8"))
    found = {item["src"]: item for item in items}
    for name, count in counts.items():
        assert found[name]["info"].split(":")[0].endswith(f"×{count}"), found[name]
        assert name in found[name]["info"].split(": ", 1)[1]  # an example line holding it
    assert "ヨハン" not in found
    ours = [item["src"] for item in items if item["src"] in NAMES]
    assert ours == sorted(NAMES, key=lambda name: -counts[name])[: len(ours)]
    assert found["美咲"]["info"].startswith("name") and found["エリザベート"]["info"].startswith("katakana")


@pytest.mark.parametrize("name", ["names.txt", "names.tsv", "names.json"])
def test_the_written_glossary_is_read_back_by_translate(
    tmp_path: Path, sakura: Any, translate_cli: Any, recorder: Any, echo_args: tuple[str, ...], name: str
) -> None:
    write_book(tmp_path / "book.txt")
    assert sakura("glossary", tmp_path / "book.txt", "-o", tmp_path / name).exit_code == 0
    glossary = load_glossaries([tmp_path / name])
    assert glossary.lookup("美咲") == "美咲" and glossary.lookup("魔導師団") == "魔導師団"
    result = translate_cli(tmp_path / "book.txt", *echo_args, "-g", tmp_path / name, "--no-check", "glossary")
    assert result.exit_code == 0, result.output
    prompts = [message["content"] for g in recorder.generations for message in g.messages]
    assert any("エリザベート->エリザベート" in prompt for prompt in prompts)  # the glossary reached the model


async def test_terms_translated_by_the_running_server(app_server: Any, recorder: Any, tmp_path: Path) -> None:
    from sakura_echo.engine import EchoEngine, EchoOptions

    engine = EchoEngine(EchoOptions(parallel=2))
    await engine.load("sakura-echo-v1.0")
    server = await app_server(engine)
    write_book(tmp_path / "book.txt")
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", "from sakura_core.cli import main; main()"],
        "glossary",
        str(tmp_path / "book.txt"),
        "-o",
        str(tmp_path / "names.tsv"),
        "--translate",
        "--server",
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    sent = " ".join(g.user for g in recorder.generations)
    assert all(name in sent for name in NAMES)  # every term went to the model
    assert "terms written to" in stdout.decode()
    rows = [line.split("\t") for line in (tmp_path / "names.tsv").read_text(encoding="utf-8").splitlines()]
    assert {row[0] for row in rows} >= set(NAMES) and all(row[1] for row in rows)


def test_a_missing_book_is_one_line(tmp_path: Path, sakura: Any) -> None:
    result = sakura("glossary", tmp_path / "missing.txt", "-o", tmp_path / "names.txt")
    assert result.exit_code == 2
    assert "missing.txt: no such file or folder（" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "names.txt").exists()
