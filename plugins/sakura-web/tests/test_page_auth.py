"""With ``--api-key`` on, the page asks for the key before its first API call (the public ``/translate/auth`` says
one is needed; a wrong or stale key's 401 asks again) in a dialog with a labelled input, keeps it for the session
(or in localStorage when asked to remember it), sends it on every request, and works after it."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def wait(driver: Any, timeout: float) -> WebDriverWait:
    """A wait that looks again when the page redrew the element a condition held (a job card, a chunk)."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


KEY = "sk-page-test-key"


@pytest.fixture(scope="module")
def keyed_server(sakura_process: Any) -> Any:
    """``sakura run --api-key KEY`` on the tiny model."""
    return sakura_process("--api-key", KEY)


def dialog_open(driver: Any) -> bool:
    return bool(driver.execute_script("return document.getElementById('auth-dialog').open"))


def submit_key(driver: Any, key: str) -> None:
    field = driver.find_element(By.ID, "auth-key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "auth-submit").click()


def test_the_key_is_asked_for_kept_and_sent(browser: Any, keyed_server: Any, screenshot: Any) -> None:
    browser.get(f"{keyed_server.url}/#translate")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get(f"{keyed_server.url}/#translate")
    browser.get_log("browser")
    wait(browser, 10).until(dialog_open)
    # the prompt: a modal dialog whose password field has a label
    label = browser.find_element(By.CSS_SELECTOR, "label[for='auth-key']").text
    assert label and browser.find_element(By.ID, "auth-key").get_attribute("type") == "password"
    assert browser.switch_to.active_element.get_attribute("id") == "auth-key"
    screenshot(browser, "auth")

    submit_key(browser, "wrong")
    wait(browser, 10).until(lambda d: d.find_element(By.ID, "auth-error").is_displayed())
    assert dialog_open(browser)

    browser.find_element(By.ID, "auth-remember").click()
    submit_key(browser, KEY)
    wait(browser, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert not dialog_open(browser)
    assert "sakura-tiny-qwen2-v1.0-f32" in browser.find_element(By.ID, "model-line").text
    assert browser.execute_script("return localStorage.getItem('sakura.auth')") == f"Bearer {KEY}"

    # the page works with it: a translation streams through the keyed API
    browser.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    tokens = browser.find_element(By.ID, "max_tokens")
    tokens.clear()
    tokens.send_keys("6")
    browser.find_element(By.ID, "source").send_keys("おはようございます。")
    browser.find_element(By.ID, "translate-go").click()
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-kind") == "done")
    assert browser.find_element(By.CSS_SELECTOR, "#aligned-rows td.dst").get_attribute("textContent")
    # remembered: a new visit asks nothing
    browser.get(f"{keyed_server.url}/#server")
    wait(browser, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert not dialog_open(browser)
    wait(browser, 10).until(lambda d: d.find_element(By.ID, "m-slots").text == "0 / 2")

    # the console: only the wrong key's refused request; the first visit asked before calling, so none there
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert len(errors) == 1 and "401 (Unauthorized)" in errors[0], errors
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")


def test_basic_auth_asks_for_the_user_too(browser: Any, sakura_process: Any) -> None:
    server = sakura_process("--auth", "reader:s3cret")
    browser.get(f"{server.url}/#translate")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get(f"{server.url}/#translate")
    wait(browser, 10).until(dialog_open)
    user = browser.find_element(By.ID, "auth-user")
    assert user.is_displayed() and browser.switch_to.active_element.get_attribute("id") == "auth-user"
    user.send_keys("reader")
    submit_key(browser, "s3cret")
    wait(browser, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert not dialog_open(browser)
    assert "sakura-tiny-qwen2-v1.0-f32" in browser.find_element(By.ID, "model-line").text
    assert browser.execute_script("return sessionStorage.getItem('sakura.auth')").startswith("Basic ")
    browser.get_log("browser")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
