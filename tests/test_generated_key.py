"""The API key ``sakura run`` generates for a public address with no auth option: shown once, and written nowhere else.

The server binds 0.0.0.0 on this machine; every request goes to 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sakura_core.testing.ports import free_port

TIMEOUT = 60.0  # generous: the machine running the tests may be busy
CHAT = {"messages": [{"role": "user", "content": "将下面的日文文本翻译成中文：こんにちは"}]}


@pytest.mark.parametrize(
    ("log_level", "shown_as"),
    [
        ("debug", r"  auth:    generated API key \(shown once\): (\S+)\n"),
        ("warning", r"WARNING .*requests need the generated API key: Authorization: Bearer (\S+)\n"),
    ],
    ids=["in-the-banner-at-debug", "in-a-warning-without-the-banner"],
)
def test_the_generated_key_is_shown_once_and_written_nowhere_else(
    tmp_path: Path, log_level: str, shown_as: str
) -> None:
    port = free_port("0.0.0.0")
    url = f"http://127.0.0.1:{port}"
    places = {name: tmp_path / name for name in ("home", "work", "tmp", "config", "cache", "data", "state")}
    for folder in places.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SAKURA_API_KEY"}
    env.update(HOME=str(places["home"]), TMPDIR=str(places["tmp"]), XDG_CONFIG_HOME=str(places["config"]),
               XDG_CACHE_HOME=str(places["cache"]), XDG_DATA_HOME=str(places["data"]),
               XDG_STATE_HOME=str(places["state"]))  # fmt: skip
    log = tmp_path / "sakura.log"
    args = ["run", "--engine", "echo", "--model", "sakura-echo-v1.0", "--listen", f"0.0.0.0:{port}"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sakura_core.cli", *args, "--log-level", log_level],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=places["work"], env=env,
        )  # fmt: skip
    answers: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            deadline = time.monotonic() + TIMEOUT
            while (found := re.search(shown_as, log.read_text())) is None:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"the key was not shown:\n{log.read_text()}"
                time.sleep(0.05)
            key = found.group(1)
            assert len(key) >= 24
            assert http.get("/v1/models").status_code == 401  # the key is required ...
            authorized = {"Authorization": f"Bearer {key}"}
            reply = http.post("/v1/chat/completions", json=CHAT, headers=authorized)
            assert reply.status_code == 200  # ... and accepted
            answers.append(reply.text)
            for path in ("/v1/models", "/slots", "/props", "/metrics", "/health", "/openapi.json"):
                answers.append(http.get(path, headers=authorized).text)
            answers.append(
                http.post("/v1/completions", json={"prompt": "x"}, headers={"Authorization": "Bearer x"}).text
            )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 0
    output = log.read_text()
    assert output.count(key) == 1, output
    assert not [answer for answer in answers if key in answer], "an HTTP answer carries the key"
    written = [path for folder in places.values() for path in folder.rglob("*") if path.is_file()]
    assert not [path for path in written if key.encode() in path.read_bytes()], "the key was written to a file"
