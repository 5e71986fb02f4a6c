"""The real Ollama servers of the test suite: finding their executables and running ``ollama serve`` in a sandbox.

The executable is, in order: the one ``SAKURA_TEST_OLLAMA`` names; the one ``tools/install_test_ollama.sh`` leaves
in the repository (``.cache/test-ollama/bin/ollama``, Ollama 0.5.4); ``ollama`` on PATH. The tests of the current
API (``/api/create`` with ``files``) run Ollama 0.9.3 instead: ``SAKURA_TEST_OLLAMA_0_9``, else
``.cache/test-ollama-0.9/bin/ollama``, else ``ollama`` on PATH. Each server gets its own HOME and OLLAMA_MODELS
(under pytest's tmp_path) and a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sakura_core.testing.ports import free_port

#: Environment variable naming the Ollama executable the tests run.
EXECUTABLE_ENV = "SAKURA_TEST_OLLAMA"
#: The script that installs the test server, relative to the repository root.
INSTALL_SCRIPT = "plugins/sakura-ollama/tools/install_test_ollama.sh"
#: Where that script leaves the executable, relative to the repository root.
INSTALLED_EXECUTABLE = ".cache/test-ollama/bin/ollama"
#: The same two for the Ollama 0.9 build (the newest a registry ships), for the tests of the current API.
EXECUTABLE_0_9_ENV = "SAKURA_TEST_OLLAMA_0_9"
INSTALLED_EXECUTABLE_0_9 = ".cache/test-ollama-0.9/bin/ollama"
START_SECONDS = 60.0


class MissingTestOllamaError(RuntimeError):
    """No Ollama executable for the real-server tests. The message names the install script."""


def repository_root() -> Path | None:
    """The repository this package is checked out in (editable installs), else None."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / INSTALL_SCRIPT).is_file():
            return parent
    return None


def find_test_ollama(*, current_api: bool = False) -> str:
    """The Ollama executable for the real-server tests (``current_api``: the 0.9 build, whose ``/api/create`` takes
    ``files``); MissingTestOllamaError says how to install one."""
    variable, installed = EXECUTABLE_ENV, INSTALLED_EXECUTABLE
    if current_api:
        variable, installed = EXECUTABLE_0_9_ENV, INSTALLED_EXECUTABLE_0_9
    explicit = os.environ.get(variable)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise MissingTestOllamaError(f"{variable}={explicit} is not an executable file")
    root = repository_root()
    if root is not None and os.access(root / installed, os.X_OK):
        return str(root / installed)
    on_path = shutil.which("ollama")
    if on_path is not None:
        return on_path
    raise MissingTestOllamaError(
        f"no Ollama server for the real-server tests: run `bash {INSTALL_SCRIPT}` (CI does), "
        f"or set {variable} to an ollama executable"
    )


def sandbox_environment(home: Path, *, port: int, parallel: int = 1, base: Mapping[str, str] | None = None) -> dict:
    """Environment for an ``ollama serve`` that keeps to ``home`` and listens on 127.0.0.1:``port``."""
    env = dict(os.environ if base is None else base)
    (home / "models").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        OLLAMA_MODELS=str(home / "models"),
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_NUM_PARALLEL=str(parallel),
        OLLAMA_KEEP_ALIVE="30m",
        OLLAMA_NOPRUNE="1",
    )
    return env


def answers(url: str) -> bool:
    """True when an Ollama server answers ``GET /api/version`` at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class RealOllama:
    """A running ``ollama serve`` of the tests."""

    executable: str
    home: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server has written so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_real_ollama(
    home: Path, *, parallel: int = 1, executable: str | None = None, port: int | None = None
) -> RealOllama:
    """Start ``ollama serve`` sandboxed in ``home`` on ``port`` (a free one by default); wait until it answers."""
    executable = executable or find_test_ollama()
    port = port or free_port()
    env = sandbox_environment(home, port=port, parallel=parallel)
    log_path = home / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [executable, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = RealOllama(executable, home, port, process, log_path, env)
    deadline = time.monotonic() + START_SECONDS
    while not answers(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"`{executable} serve` did not start; its output:\n{server.log()[-3000:]}")
        time.sleep(0.1)
    return server


@contextlib.contextmanager
def real_ollama(home: Path, *, parallel: int = 1) -> Iterator[RealOllama]:
    """A real Ollama server for the duration of the ``with`` block."""
    server = start_real_ollama(home, parallel=parallel)
    try:
        yield server
    finally:
        server.stop()
