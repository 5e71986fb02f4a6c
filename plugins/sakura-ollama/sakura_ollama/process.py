"""An ``ollama serve`` that sakura starts when none answers, and stops when it exits."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping

from sakura_core.engine import ModelLoadError
from sakura_ollama.api import OllamaAddress

logger = logging.getLogger(__name__)

#: Seconds to wait for a started server to answer.
START_TIMEOUT = 60.0
#: Seconds a stopping server gets before it is killed.
STOP_TIMEOUT = 10.0
#: Lines of the server's output kept to explain a failed start.
KEPT_OUTPUT_LINES = 20


def find_ollama() -> str | None:
    """The ``ollama`` executable on PATH, or None."""
    return shutil.which("ollama")


class OllamaServerProcess:
    """A child ``ollama serve`` listening at one address; its output goes to the ``sakura_ollama.serve`` log."""

    def __init__(self, executable: str, address: OllamaAddress, *, parallel: int) -> None:
        self.executable = executable
        self.address = address
        self.parallel = parallel
        self.process: asyncio.subprocess.Process | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=KEPT_OUTPUT_LINES)
        self._reader: asyncio.Task[None] | None = None

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's environment: ours, with OLLAMA_HOST set to the address and OLLAMA_NUM_PARALLEL defaulted."""
        env = dict(os.environ if base is None else base)
        env["OLLAMA_HOST"] = self.address.listen
        env.setdefault("OLLAMA_NUM_PARALLEL", str(self.parallel))
        return env

    async def start(self, ready: Callable[[], Awaitable[bool]], *, wait_seconds: float = START_TIMEOUT) -> None:
        """Start the server and wait until ``ready()`` is true; ModelLoadError when it exits or never answers."""
        logger.info("starting `%s serve` on %s", self.executable, self.address.listen)
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            "serve",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,  # Ctrl-C reaches sakura, which stops the server in order
        )
        self._reader = asyncio.create_task(self._read_output())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            if self.process.returncode is not None:
                await self._drain()
                raise ModelLoadError(
                    f"`ollama serve` exited with status {self.process.returncode} before answering{self._last_output()}"
                )
            if await ready():
                logger.info("ollama serve (pid %d) is ready on %s", self.process.pid, self.address.listen)
                return
            if loop.time() > deadline:
                await self.stop()
                raise ModelLoadError(f"`ollama serve` did not answer within {wait_seconds:g} s{self._last_output()}")
            await asyncio.sleep(0.1)

    @property
    def running(self) -> bool:
        """True while the child process runs."""
        return self.process is not None and self.process.returncode is None

    async def stop(self, *, grace_seconds: float = STOP_TIMEOUT) -> None:
        """Ask the server to stop (SIGTERM, which also stops its model runners); kill it after ``grace_seconds``."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_seconds)
            except TimeoutError:
                logger.warning("ollama serve (pid %d) did not stop in %.0f s: killing it", process.pid, grace_seconds)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            logger.info("stopped ollama serve (pid %d)", process.pid)
        await self._drain()

    async def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        serve_log = logging.getLogger("sakura_ollama.serve")
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.output.append(line)
                serve_log.debug("%s", line)

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None

    def _last_output(self) -> str:
        return f"; its last output: {self.output[-1]}" if self.output else ""
