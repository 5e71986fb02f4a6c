"""The workbench in a real headless Chromium against ``sakura run`` on a tiny GGUF (real llama.cpp): the page loads
fast and small with a clean console, text streams into the aligned output, the glossary edited in the page reaches
the engine's prompt, the glossary formats read and write as the CLI does, every control is reachable by keyboard,
the language switch sticks, and an idle page costs the server under one request a second."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sakura_translate.errors import InputError
from sakura_translate.glossary import load_glossaries, parse_json_glossary, parse_line_glossary
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


def wait(driver: Any, timeout: float) -> WebDriverWait:
    """A wait that looks again when the page redrew the element a condition held (a job card, a chunk)."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


SOURCE_LINES = ["おはようございます、先輩。", "今日もいい天気ですね。", "", "佐藤です。よろしく。"]
#: Controls whose focus the keyboard test checks, in every view.
INTERACTIVE = "button, input, select, textarea, summary, a[href], [tabindex]:not([tabindex='-1'])"


def open_page(driver: Any, url: str, view: str = "translate") -> None:
    """Load the page on ``view`` and wait until it has read the model's details."""
    driver.get(f"{url}/#{view}")
    wait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def severe_console_entries(driver: Any) -> list[dict[str, Any]]:
    """The console's errors since the last call."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def show(driver: Any, view: str) -> None:
    driver.find_element(By.ID, f"tab-{view}").click()
    wait(driver, 5).until(lambda d: d.find_element(By.ID, f"view-{view}").is_displayed())


@pytest.fixture
def page(browser: Any, page_server: Any) -> Any:
    """The page on a fresh start: nothing kept from another test (glossary, language, key)."""
    open_page(browser, page_server.url)
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    open_page(browser, page_server.url)
    severe_console_entries(browser)
    return browser


def test_the_page_loads_under_a_second_and_300_kb_with_a_clean_console(
    browser: Any, page_server: Any, screenshot: Any
) -> None:
    browser.get_log("browser")  # what earlier tests left
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        open_page(browser, page_server.url)
        timing = browser.execute_script(
            """const [nav] = performance.getEntriesByType('navigation');
            const resources = performance.getEntriesByType('resource');
            const all = [nav, ...resources];
            return {load: nav.loadEventEnd, ready: performance.now(),
                    transferred: all.reduce((s, e) => s + e.transferSize, 0),
                    body: all.reduce((s, e) => s + e.decodedBodySize, 0),
                    names: resources.map((e) => new URL(e.name).pathname)};"""
        )
    finally:
        browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    print(f"page load: {timing['load']:.0f} ms, {timing['transferred']} bytes transferred, {timing['body']} decoded")
    assert timing["load"] < 1000, timing
    assert 0 < timing["transferred"] < 300_000 and timing["body"] < 300_000, timing
    # every asset came from this server, and nothing but the page's own files and its API
    assert {"/web/app.js", "/web/app.css", "/web/i18n.js", "/translate/info", "/jobs"} <= set(timing["names"])
    model_line = browser.find_element(By.ID, "model-line").text
    assert "sakura-tiny-qwen2-v1.0-f32" in model_line and "1.0" in model_line and "v1.0" in model_line
    presets = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#preset option")]
    assert presets[:2] == ["sakura", "anti-degeneration"]
    assert browser.find_element(By.ID, "temperature").get_attribute("value") == "0.1"
    assert severe_console_entries(browser) == []
    static = Path(__file__).parents[1] / "sakura_web" / "static"
    assert sum(path.stat().st_size for path in static.iterdir()) < 300_000


def test_text_streams_into_aligned_lines_and_the_glossary_reaches_the_prompt(
    page: Any, page_server: Any, screenshot: Any
) -> None:
    show(page, "glossary")
    for src, dst, note in (("先輩", "前辈", "称呼"), ("魔王", "魔王", "")):
        page.find_element(By.ID, "glossary-add").click()
        cells = page.find_elements(By.CSS_SELECTOR, "#glossary-rows tr:last-child input")
        for cell, value in zip(cells, (src, dst, note), strict=True):
            cell.send_keys(value)
    assert "2" in page.find_element(By.ID, "glossary-count").text
    screenshot(page, "glossary")

    show(page, "translate")
    page.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    for field, value in (("temperature", "0"), ("max_tokens", "10")):
        box = page.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    page.find_element(By.ID, "source").send_keys("\n".join(SOURCE_LINES))
    # count the updates of the output cells: a streamed answer changes them many times, one answer would once
    page.execute_script(
        """window.updates = 0;
        new MutationObserver((records) => { window.updates += records.length; })
          .observe(document.getElementById('aligned-rows'), {subtree: true, childList: true, characterData: true});"""
    )
    prompts_before = len(page_server.prompts())
    page.find_element(By.ID, "translate-go").click()
    wait(page, 30).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-kind") == "done")

    rows = page.find_elements(By.CSS_SELECTOR, "#aligned-rows tr")
    cells = [[td.get_attribute("textContent") for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [source for source, _ in cells] == SOURCE_LINES  # source line i in row i
    translations = [translation for _, translation in cells]
    assert translations[2] == ""  # a blank line stays blank
    assert all(translations[i] for i in (0, 1, 3)), translations  # each line beside its own translation
    assert all("\n" not in translations[i] for i in (0, 1)), translations
    assert page.execute_script("return window.updates") > 4  # streamed: many small updates
    assert page.find_element(By.ID, "translate-go").is_enabled()

    prompts = page_server.prompts()[prompts_before:]
    assert prompts, "the engine got no prompt"
    with_senpai = [p for p in prompts if "おはようございます、先輩。" in p]
    assert with_senpai and all("先輩->前辈 #称呼" in p for p in with_senpai)  # v1.0's glossary line, with the note
    assert all("魔王" not in p for p in prompts)  # an entry that does not occur is never sent
    alone = [p for p in prompts if "佐藤です。" in p and "先輩。" not in p]
    assert all("前辈" not in p.split("佐藤です。")[0].split("<|im_start|>user")[-1] for p in alone)
    assert severe_console_entries(page) == []
    screenshot(page, "translate")


CASES = [
    "先輩->前辈 #称呼\n佐藤->佐藤\n// a comment\n\\\\ another\n\n  魔王  ->  魔王 #  敌人 \n",
    "先輩\t前辈\t称呼\n佐藤\t佐藤\n\u3000魔王\u3000\t魔王\t#注\t附加\n",
    "先輩->前辈 #一\n先輩->学长 #二\n",
    "a->b->c #d #e\n",
    "no arrow here\n",
    "->empty\n",
    '{"先輩": "前辈", "佐藤": "佐藤"}',
    '[{"src": "先輩", "dst": "前辈", "info": "称呼"}, {"src": " 魔王 ", "dst": "魔王", "note": " 敌人 "}]',
    '[{"src": "先輩"}]',
    '"text"',
    "{not json",
]


def python_parse(text: str, name: str) -> list[tuple[str, str, str | None]] | None:
    """What sakura translate reads from ``text`` (None: it refuses it)."""
    is_json = text.lstrip()[:1] in ("{", "[", '"')
    try:
        entries = (parse_json_glossary if is_json else parse_line_glossary)(text, Path(name))
    except InputError:
        return None
    return [(e.src, e.dst, e.info) for e in entries]


def test_glossary_formats_read_and_write_as_the_cli_does(page: Any, tmp_path: Path) -> None:
    module = "const m = await import('/web/glossary-formats.js');"
    for text in CASES:
        name = "glossary.json" if text.lstrip()[:1] in ("{", "[", '"') else "glossary.txt"
        try:
            parsed = page.execute_script(
                f"{module} return m.parseGlossary(arguments[0], arguments[1]).map(e => [e.src, e.dst, e.info]);",
                text,
                name,
            )
            ours = [tuple(entry) for entry in parsed]
        except JavascriptException as error:
            assert "GlossaryError" in error.msg or "glossary" in error.msg.lower(), error.msg
            ours = None
        assert ours == python_parse(text, name), text

    # what the page exports, sakura translate reads back as the same entries
    entries = [{"src": "先輩", "dst": "前辈", "info": "称呼"}, {"src": "佐藤", "dst": "佐藤", "info": None}]
    for form in ("sakura", "galtransl", "fishhawk", "list"):
        exported = page.execute_script(
            f"{module} return m.serializeGlossary(arguments[0], arguments[1]);", entries, form
        )
        path = tmp_path / exported["name"]
        path.write_text(exported["text"], encoding="utf-8")
        read = [(e.src, e.dst, e.info) for e in load_glossaries([path]).entries.values()]
        expected = [(e["src"], e["dst"], None if form == "fishhawk" else e["info"]) for e in entries]
        assert read == expected, form

    # imported through the page's file picker, then kept in the browser between visits
    show(page, "glossary")
    galtransl = tmp_path / "galtransl.txt"
    galtransl.write_text("// GalTransl\n先輩\t前辈\t称呼\n魔王\t魔王\n", encoding="utf-8")
    page.find_element(By.ID, "glossary-import").send_keys(str(galtransl))
    wait(page, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#glossary-rows tr")) == 2)
    page.refresh()
    wait(page, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    values = [i.get_attribute("value") for i in page.find_elements(By.CSS_SELECTOR, "#glossary-rows input")]
    assert values == ["先輩", "前辈", "称呼", "魔王", "魔王", ""]
    kept = json.loads(page.execute_script("return localStorage.getItem('sakura.glossary')"))
    assert [row["src"] for row in kept] == ["先輩", "魔王"]
    assert severe_console_entries(page) == []


def test_the_english_switch_sticks_across_visits(page: Any, page_server: Any) -> None:
    assert page.find_element(By.ID, "tab-translate").text == "翻译文本"
    assert page.execute_script("return document.documentElement.lang") == "zh-CN"
    page.find_element(By.ID, "lang-switch").click()
    assert page.find_element(By.ID, "tab-translate").text == "Translate text"
    open_page(page, page_server.url)
    assert page.find_element(By.ID, "tab-glossary").text == "Glossary"
    assert page.execute_script("return document.documentElement.lang") == "en"
    assert "Model sakura-tiny-qwen2-v1.0-f32" in page.find_element(By.ID, "model-line").text
    page.find_element(By.ID, "lang-switch").click()
    assert page.find_element(By.ID, "tab-glossary").text == "术语表"


def focus_walk(driver: Any, presses: int) -> set[str]:
    """Mark every visible control, press Tab ``presses`` times, and return the marks that got focus."""
    seen = set()
    for _ in range(presses):
        ActionChains(driver).send_keys(Keys.TAB).perform()  # to the page, never into a file input's picker
        mark = driver.switch_to.active_element.get_attribute("data-kbd")
        if mark:
            seen.add(mark)
    return seen


def tab_to(driver: Any, element_id: str) -> None:
    """Press Tab until the element ``element_id`` has focus."""
    for _ in range(80):
        if driver.switch_to.active_element.get_attribute("id") == element_id:
            return
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"Tab never reached #{element_id}")


def test_keyboard_alone_reaches_every_control_of_every_view(page: Any) -> None:
    show(page, "glossary")
    page.find_element(By.ID, "glossary-add").click()  # a row, so its inputs and delete button are there
    show(page, "translate")
    page.find_element(By.CSS_SELECTOR, "#advanced summary").click()  # the advanced fields shown too
    page.execute_script("document.activeElement.blur()")
    tab_to(page, "tab-translate")
    for view in ("translate", "glossary", "files", "proofread", "server"):
        if view != "translate":
            ActionChains(page).send_keys(Keys.ARROW_RIGHT).perform()  # the tab list: arrows move and show
        assert page.switch_to.active_element.get_attribute("id") == f"tab-{view}"
        assert page.find_element(By.ID, f"view-{view}").is_displayed()
        wanted = page.execute_script(
            """const marks = [];
            document.querySelectorAll(arguments[0]).forEach((el, i) => {
              el.removeAttribute('data-kbd');
              const shown = el.getClientRects().length > 0 && !el.closest('[hidden], dialog:not([open])');
              if (shown && !el.disabled && el.tabIndex >= 0) {
                el.dataset.kbd = `${el.tagName}#${el.id || i}`;
                marks.push(el.dataset.kbd);
              }
            });
            return marks;""",
            INTERACTIVE,
        )
        assert len(wanted) >= 2  # the header and the selected tab at least
        reached = focus_walk(page, len(wanted) + 4)
        assert set(wanted) <= reached, set(wanted) - reached
        # the focused control is drawn with a visible ring
        outline = page.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none" or page.switch_to.active_element.tag_name == "body"
        tab_to(page, f"tab-{view}")  # Tab on round to the tab list
    assert severe_console_entries(page) == []


def test_an_idle_page_costs_under_one_request_a_second(page: Any, page_server: Any, screenshot: Any) -> None:
    for view, seconds in (("translate", 4.0), ("server", 7.0)):
        show(page, view)
        time.sleep(0.5)
        before = page_server.requests_served()
        time.sleep(seconds)
        made = page_server.requests_served() - before - 1  # the count's own /metrics request
        print(f"idle page on the {view} view: {made:.0f} requests in {seconds} s")
        assert made / seconds < 1, (view, made)
        if view == "translate":
            assert made == 0
    # the server view shows the slots and the metrics it read
    assert page.find_element(By.ID, "m-slots").text == "0 / 2"
    assert page.find_element(By.ID, "m-health").text == "ok"
    assert page.find_element(By.ID, "m-cached").text != "–"
    assert len(page.find_elements(By.CSS_SELECTOR, "#slot-rows tr")) == 2
    screenshot(page, "server")
    show(page, "translate")
    assert severe_console_entries(page) == []
