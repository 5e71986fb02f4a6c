"""Files in the page: an .srt dropped on it becomes a job whose progress the page follows and whose result (cues and
timings) equals ``sakura translate``'s output for the same file; the proofread view edits a line and translates a
chunk again; a job survives a restart of the server and the reloaded page shows it finish."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pysubs2
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def wait(driver: Any, timeout: float) -> WebDriverWait:
    """A wait that looks again when the page redrew the element a condition held (a job card, a chunk)."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


#: The page's job settings, and the same for the CLI: greedy answers of a few tokens, short chunks.
MAX_TOKENS = "12"
CHUNK_CHARS = "24"
CUES = [
    (1000, 3500, "おはようございます、先輩。"),
    (4000, 6000, r"{\an8}今日もいい天気ですね。"),
    (6000, 9000, r"一行目です\N二行目です"),
    (10000, 12000, "ありがとう。本当に、ありがとう。"),
]


def write_srt(path: Path) -> Path:
    """A subtitle file made with pysubs2."""
    subs = pysubs2.SSAFile()
    for start, end, text in CUES:
        subs.append(pysubs2.SSAEvent(start=start, end=end, text=text))
    subs.save(str(path))
    return path


def open_page(driver: Any, url: str, view: str) -> None:
    driver.get(f"{url}/#{view}")
    wait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def set_job_settings(driver: Any, chunk_chars: str = CHUNK_CHARS, max_tokens: str = MAX_TOKENS) -> None:
    """Greedy answers of ``max_tokens`` (the text view's advanced settings) and chunks of ``chunk_chars``."""
    driver.find_element(By.ID, "tab-translate").click()
    driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    for field, value in (("temperature", "0"), ("max_tokens", max_tokens)):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "tab-files").click()
    box = driver.find_element(By.ID, "chunk_chars")
    box.clear()
    box.send_keys(chunk_chars)


def drop_file(driver: Any, path: Path) -> None:
    """Drop ``path`` on the drop zone as a person dragging it from a file manager would (a synthetic drop event)."""
    driver.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], arguments[1]));
        const zone = document.getElementById('drop-zone');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));""",
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
    )


def job_card(driver: Any, name: str, state: str, timeout: float = 60) -> Any:
    """The card of the job called ``name`` once it shows ``state``."""
    selector = f"#jobs li.job[data-state='{state}']"

    def find(d: Any) -> Any:
        for card in d.find_elements(By.CSS_SELECTOR, selector):
            if card.find_element(By.TAG_NAME, "h3").text.startswith(name):
                return card
        return False

    return wait(driver, timeout).until(find)


def sakura_translate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``sakura translate ARGS`` as a user runs it."""
    command = [sys.executable, "-c", "from sakura_core.cli import main; main()", "translate", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def downloads(browser: Any, tmp_path: Path) -> Path:
    """Where the browser saves downloads during this test."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    return folder


def wait_for_file(folder: Path, name: str) -> Path:
    path = folder / name
    for _ in range(100):
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {list(folder.iterdir())}")


def test_a_dropped_srt_comes_back_like_the_cli_makes_it_and_proofreads(
    browser: Any, page_server: Any, tmp_path: Path, downloads: Path, screenshot: Any
) -> None:
    source = write_srt(tmp_path / "episode.srt")
    open_page(browser, page_server.url, "files")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    open_page(browser, page_server.url, "files")
    browser.get_log("browser")
    assert ".srt" in browser.find_element(By.ID, "file-input").get_attribute("accept")
    set_job_settings(browser)
    drop_file(browser, source)
    card = job_card(browser, "episode.srt", "done")
    progress = card.find_element(By.TAG_NAME, "progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") != "0"
    screenshot(browser, "files")

    # the CLI on the same file through the same server, with the same settings
    cli_output = tmp_path / "cli" / "episode.zh.srt"
    result = sakura_translate(
        source, "--server", page_server.url, "--greedy", "--max-tokens", MAX_TOKENS,
        "--chunk-chars", CHUNK_CHARS, "-o", cli_output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    card.find_element(By.CSS_SELECTOR, ".actions button.primary").click()
    downloaded = wait_for_file(downloads, "episode.zh.srt")
    ours, theirs = pysubs2.load(str(downloaded)), pysubs2.load(str(cli_output))
    assert [(e.start, e.end) for e in ours] == [(start, end) for start, end, _ in CUES]
    assert [(e.start, e.end, e.text) for e in ours] == [(e.start, e.end, e.text) for e in theirs]
    assert downloaded.read_bytes() == cli_output.read_bytes()

    # proofread: every chunk beside its source; a line edited by hand is saved into the result
    card.find_element(By.XPATH, ".//button[contains(@class, 'primary')]/following-sibling::button").click()
    wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chunks section.chunk"))
    sections = browser.find_elements(By.CSS_SELECTOR, "#chunks section.chunk")
    sources = [td.get_attribute("textContent") for td in browser.find_elements(By.CSS_SELECTOR, "#chunks td.src")]
    assert "おはようございます、先輩。" in sources and len(sections) >= 2
    first = sections[0].find_element(By.CSS_SELECTOR, "input")
    first.clear()
    first.send_keys("早上好，前辈。")
    sections[0].find_element(By.CSS_SELECTOR, ".actions button.primary").click()
    first_heading = "return document.querySelector('#chunks h3').textContent"  # read at once: the chunk is redrawn
    wait(browser, 10).until(lambda d: "（已手动修改）" in d.execute_script(first_heading))
    screenshot(browser, "proofread")
    # a chunk translated again comes back (not from the cache: the engine gets its prompt once more)
    prompts = len(page_server.prompts())
    sections = browser.find_elements(By.CSS_SELECTOR, "#chunks section.chunk")
    sections[-1].find_elements(By.CSS_SELECTOR, ".actions button")[1].click()
    wait(browser, 30).until(lambda d: "已重新翻译" in d.find_element(By.ID, "status").text)
    assert len(page_server.prompts()) > prompts
    for old in downloads.iterdir():
        old.unlink()
    browser.find_element(By.ID, "proof-download").click()
    edited = pysubs2.load(str(wait_for_file(downloads, "episode.zh.srt")))
    assert edited[0].text == "早上好，前辈。" and [(e.start, e.end) for e in edited] == [(s, e) for s, e, _ in CUES]
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_job_survives_a_server_restart_and_the_page_shows_it_finish(
    browser: Any, sakura_process: Any, tmp_path: Path
) -> None:
    server = sakura_process()
    novel = tmp_path / "novel.txt"
    novel.write_text("".join(f"第{n}行。吾輩は猫である。名前はまだ無い。\n" for n in range(1, 61)), encoding="utf-8")
    open_page(browser, server.url, "files")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    open_page(browser, server.url, "files")
    set_job_settings(browser, chunk_chars="40", max_tokens="48")
    browser.find_element(By.ID, "file-input").send_keys(str(novel))
    card = job_card(browser, "novel.txt", "running")
    job_id = card.get_attribute("data-job-id")

    # killed as a crash would, partway through
    wait(browser, 60).until(
        lambda d: int(d.find_element(By.CSS_SELECTOR, f"#job-{job_id} progress").get_attribute("value")) >= 2
    )
    server.stop(signal.SIGKILL)
    server.start()
    browser.refresh()  # the page of a person who reloads after the server came back
    wait(browser, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert browser.find_element(By.ID, f"job-{job_id}").get_attribute("data-state") in ("queued", "running", "done")
    card = job_card(browser, "novel.txt", "done", timeout=120)
    assert card.get_attribute("data-job-id") == job_id
    facts = card.find_element(By.CSS_SELECTOR, ".facts").text
    total = int(card.find_element(By.TAG_NAME, "progress").get_attribute("max"))
    assert f"{total}/{total}" in facts and total >= 10
    # the console: only the stream the crash cut and the tries while the server was down
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    expected = ("ERR_INCOMPLETE_CHUNKED_ENCODING", "ERR_CONNECTION_REFUSED", "ERR_EMPTY_RESPONSE")
    assert all(any(reason in message for reason in expected) for message in errors), errors
