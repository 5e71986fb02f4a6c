"""The README's first command, ``sakura run --model OWNER/REPO``, against a local stand-in for the Hugging Face Hub.

huggingface_hub honours ``HF_ENDPOINT``: the tests point it at ``LocalHub``, an aiohttp server on 127.0.0.1 that
answers the routes a download really uses (``GET /api/models/OWNER/REPO`` for the file list, ``HEAD`` on
``/OWNER/REPO/resolve/REVISION/FILE`` for the metadata, a redirect to a CDN on another port, ``GET`` there for the
bytes, with ranges), and records every request. Each test has its own Hugging Face cache (``HF_HOME``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlencode

import pytest
from aiohttp import web
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.testing.ports import free_port

SAKURA = [sys.executable, "-c", "from sakura_core.cli import main; main()"]
REPOSITORY = "SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF"  # the README's own example
COMMIT = "5a4c1e0d2b3f6789abcdef0123456789abcdef01"
STEM = "sakura-1.5b-qwen2.5-v1.0"
SPLIT = f"big/{STEM}-Q8_0-00001-of-00002.gguf", f"big/{STEM}-Q8_0-00002-of-00002.gguf"
TIMEOUT = 60.0  # generous: the machine running the tests may be busy
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's "100%|█████|"


@dataclass
class LocalHub:
    """The Hub's download routes for ``repos`` (repository → file name → bytes), served on 127.0.0.1.

    GGUF files are stored like the Hub stores LFS files: ``HEAD .../resolve/...`` answers a redirect to a CDN (the
    same server on a second port, which huggingface_hub treats as another host) with the file's sha256 as its
    ETag. ``drop_downloads`` cuts that many file downloads halfway through (-1: all of them).
    """

    repos: dict[str, dict[str, bytes]]
    drop_downloads: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range header)
    endpoint: str = ""
    cdn: str = ""

    def __post_init__(self) -> None:
        self._blobs = {
            hashlib.sha256(data).hexdigest(): data for files in self.repos.values() for data in files.values()
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        """Serve in a thread of its own (the tests block on subprocesses)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        """Close the server and its thread."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def downloads(self, file_name: str) -> list[str]:
        """The Range header of every GET of ``file_name``'s bytes ("" for a whole-file request)."""
        for files in self.repos.values():
            if file_name in files:
                path = f"/cdn/{hashlib.sha256(files[file_name]).hexdigest()}"
                return [ranged for method, seen, ranged in self.requests if method == "GET" and seen == path]
        raise KeyError(file_name)

    def all_downloads(self) -> list[str]:
        """The path of every GET of a GGUF file's bytes, in order."""
        return [path for method, path, _ in self.requests if method == "GET" and path.startswith("/cdn/")]

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/models/{owner}/{name}", self._model_info)
        app.router.add_get("/api/models/{owner}/{name}/revision/{revision}", self._model_info)
        app.router.add_get("/{owner}/{name}/resolve/{revision}/{file:.+}", self._resolve)
        app.router.add_get("/cdn/{sha256}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for _ in ("hub", "cdn"):
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        ports = [address[1] for address in self._runner.addresses]
        self.endpoint, self.cdn = (f"http://127.0.0.1:{port}" for port in ports)

    @web.middleware
    async def _record(self, request: web.Request, handler: web.Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.headers.get("Range", "")))
        return await handler(request)

    def _repo(self, request: web.Request) -> tuple[str, dict[str, bytes]]:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        files = self.repos.get(repo)
        if files is None:  # what the Hub answers for a repository that does not exist (or is private)
            raise web.HTTPNotFound(
                text=json.dumps({"error": "Repository not found"}),
                content_type="application/json",
                headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
        return repo, files

    async def _model_info(self, request: web.Request) -> web.Response:
        repo, files = self._repo(request)
        siblings = [{"rfilename": name} for name in sorted(files)]
        info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "gated": False, "siblings": siblings}
        return web.json_response(info)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        _, files = self._repo(request)
        name = request.match_info["file"]
        headers = {"X-Repo-Commit": COMMIT}
        if request.match_info["revision"] not in ("main", COMMIT):
            raise web.HTTPNotFound(headers={**headers, "X-Error-Code": "RevisionNotFound"})
        if name not in files:
            raise web.HTTPNotFound(headers={**headers, "X-Error-Code": "EntryNotFound"})
        data = files[name]
        sha256 = hashlib.sha256(data).hexdigest()
        if not name.endswith(".gguf"):
            return web.Response(body=data, headers={**headers, "ETag": f'"{sha256[:40]}"'})
        git_oid = hashlib.sha1(
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n".encode()
        ).hexdigest()
        return web.Response(
            status=302,
            headers={
                **headers,
                "Location": f"{self.cdn}/cdn/{sha256}?{urlencode({'filename': PurePosixPath(name).name})}",
                "ETag": f'"{git_oid}"',
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
            },
        )

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        data = self._blobs.get(request.match_info["sha256"])
        if data is None:
            raise web.HTTPNotFound()
        start = 0
        if match := re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", "")):
            start = int(match.group(1))
        body = data[start:]
        response = web.StreamResponse(status=206 if start else 200)
        response.headers["Content-Length"] = str(len(body))
        response.headers["ETag"] = f'"{request.match_info["sha256"]}"'
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Content-Disposition"] = f'inline; filename="{request.query.get("filename", "")}";'
        if start:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        if self.drop_downloads:  # -1: every download
            if self.drop_downloads > 0:
                self.drop_downloads -= 1
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()  # the connection drops halfway through the file
            return response
        await response.write(body)
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def repository_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A GGUF repository like SakuraLLM's: several quants of one model, a split one, and a README."""
    folder = tmp_path_factory.mktemp("repository")
    files = {"README.md": b"# Sakura-1.5B-Qwen2.5-v1.0-GGUF\n"}
    for seed, quant in enumerate(("fp16", "iq4xs", "Q4_K_M", "q4_k_s")):
        name = f"{STEM}-{quant}.gguf"
        files[name] = write_tiny_gguf(folder / name, seed=seed, name=f"Sakura-1.5B-Qwen2.5-v1.0-{quant}").read_bytes()
    first = write_tiny_gguf(folder / "split.gguf", seed=9).read_bytes()
    files[SPLIT[0]], files[SPLIT[1]] = first, b"GGUF" + bytes(range(256)) * 8  # only the first part is read here
    return files


@pytest.fixture
def hub(repository_files: dict[str, bytes]) -> Iterator[LocalHub]:
    """A fresh local hub serving ``REPOSITORY``."""
    local = LocalHub({REPOSITORY: repository_files})
    local.start()
    yield local
    local.stop()


def hub_environment(hf_home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """This process's environment with huggingface_hub pointed at ``endpoint`` and the cache in ``hf_home``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TQDM_"))}
    environment.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1", **extra})
    return environment


UNREACHABLE_HUB = "http://127.0.0.1:9"  # a closed port: the hub cannot be reached, at once


class SakuraRun:
    """``sakura run ARGS`` as a subprocess whose output (stdout and stderr together) goes to a pipe or a terminal."""

    def __init__(self, args: list[str], env: dict[str, str], *, terminal: bool = False) -> None:
        if terminal:
            reader, writer = pty.openpty()
            fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal's 80x24
        else:
            reader, writer = os.pipe()
        self.process = subprocess.Popen(
            [*SAKURA, "run", *args], stdin=subprocess.DEVNULL, stdout=writer, stderr=writer, env=env
        )
        os.close(writer)
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # EIO: the terminal's other side closed
            while chunk := os.read(fd, 65536):
                self._output += chunk
        os.close(fd)

    @property
    def output(self) -> str:
        return self._output.decode("utf-8", "replace")

    def wait_for(self, text: str) -> None:
        """Wait until ``text`` appears in the output (fails if the process ends first)."""
        deadline = time.monotonic() + TIMEOUT
        while text not in self.output:
            assert self.process.poll() is None, f"sakura exited ({self.process.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"{text!r} did not appear:\n{self.output}"
            time.sleep(0.05)

    def wait(self) -> int:
        """Wait for the process to end on its own; its exit code."""
        try:
            code = self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(timeout=10)
        return code

    def interrupt(self) -> int:
        """Stop the server as Ctrl-C does; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait()


def serve_once(model: str, env: dict[str, str], *, terminal: bool = False) -> str:
    """Run ``sakura run --model MODEL`` until it serves, stop it; its output."""
    run = SakuraRun(["--model", model, "--port", str(free_port()), "--no-self-check"], env, terminal=terminal)
    try:
        run.wait_for(" is serving ")
    finally:
        code = run.interrupt()
    assert code == 0, run.output
    return run.output


def snapshot_of(hf_home: Path, repo: str = REPOSITORY) -> Path:
    """Where huggingface_hub keeps the files of ``repo`` at ``COMMIT``."""
    return hf_home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT


def errors(output: str) -> list[str]:
    """The lines of ``sakura``'s output that report an error to the user."""
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_readme_command_downloads_the_preferred_quant_then_finds_it_in_the_cache(hub: LocalHub, tmp_path: Path) -> None:
    env = hub_environment(tmp_path / "hf", hub.endpoint)
    expected = snapshot_of(tmp_path / "hf") / f"{STEM}-Q4_K_M.gguf"
    output = serve_once(REPOSITORY, env)
    assert f"loading {expected} with llama.cpp" in output
    assert "quant Q4_K_M" in output
    assert hub.all_downloads() == [f"/cdn/{sha256_of(expected)}"]
    assert not PROGRESS_BAR.search(output) and "\r" not in output, f"a progress bar in the logs:\n{output}"
    hub.requests.clear()
    output = serve_once(REPOSITORY, env)
    assert f"loading {expected} with llama.cpp" in output
    assert ("GET", f"/api/models/{REPOSITORY}", "") in hub.requests  # the hub still lists the files ...
    assert hub.all_downloads() == []  # ... but nothing is downloaded again


def test_the_progress_bar_shows_on_a_terminal(hub: LocalHub, tmp_path: Path) -> None:
    output = serve_once(f"{REPOSITORY}:IQ4_XS", hub_environment(tmp_path / "hf", hub.endpoint), terminal=True)
    assert f"{STEM}-iq4xs.gguf: 100%|" in output, output
    assert "quant iq4xs" in output


def resolve_in_subprocess(*models: str, env: dict[str, str]) -> list[dict[str, str]]:
    """Resolve each of ``models`` in a fresh interpreter (huggingface_hub reads its settings at import)."""
    code = (
        "import json, sys\n"
        "from sakura_core.engine import ModelLoadError\n"
        "from sakura_llamacpp.model_source import resolve_model\n"
        "for model in sys.argv[1:]:\n"
        "    try:\n"
        "        print(json.dumps({'path': str(resolve_model(model))}))\n"
        "    except ModelLoadError as exc:\n"
        "        print(json.dumps({'error': str(exc)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *models], capture_output=True, text=True, env=env, timeout=TIMEOUT, check=True
    )
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(models) :]]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_quant_or_a_file_name_after_the_colon_chooses_the_file(
    hub: LocalHub, tmp_path: Path, repository_files: dict[str, bytes]
) -> None:
    snapshot = snapshot_of(tmp_path / "hf")
    specs = {
        ":q4ks": f"{STEM}-q4_k_s.gguf",
        f":{STEM}-fp16.gguf": f"{STEM}-fp16.gguf",
        ":Q8_0": SPLIT[0],  # a split model: every part is downloaded, next to the first
    }
    results = resolve_in_subprocess(
        *(REPOSITORY + spec for spec in specs), f"{REPOSITORY}:Q2_K", env=hub_environment(tmp_path / "hf", hub.endpoint)
    )
    assert [result.get("path") for result in results[:-1]] == [str(snapshot / name) for name in specs.values()]
    assert results[-1]["error"].startswith(f"'Q2_K' matches no file in {REPOSITORY}: choose one with --model")
    assert f"{STEM}-Q4_K_M.gguf" in results[-1]["error"]
    downloaded = [*specs.values(), SPLIT[1]]
    for name in downloaded:
        assert (snapshot / name).read_bytes() == repository_files[name]
        assert hub.downloads(name) == [""]
    assert len(hub.all_downloads()) == len(downloaded)


def test_a_missing_repository_is_one_line(hub: LocalHub, tmp_path: Path) -> None:
    run = SakuraRun(["--model", "SakuraLLM/Sakura-Nonexistent-GGUF", "--port", str(free_port())],
                    hub_environment(tmp_path / "hf", hub.endpoint))  # fmt: skip
    assert run.wait() == 1
    assert errors(run.output) == [
        "Error: cannot open SakuraLLM/Sakura-Nonexistent-GGUF on Hugging Face (RepositoryNotFoundError): check the "
        "name; for a private or gated repository log in with `hf auth login`"
    ]
    assert "Traceback" not in run.output
    assert hub.requests == [("GET", "/api/models/SakuraLLM/Sakura-Nonexistent-GGUF", "")]


def test_a_connection_dropped_once_is_retried(
    hub: LocalHub, tmp_path: Path, repository_files: dict[str, bytes]
) -> None:
    hub.drop_downloads = 1
    name = f"{STEM}-Q4_K_M.gguf"
    [result] = resolve_in_subprocess(REPOSITORY, env=hub_environment(tmp_path / "hf", hub.endpoint))
    assert result == {"path": str(snapshot_of(tmp_path / "hf") / name)}
    assert Path(result["path"]).read_bytes() == repository_files[name]
    assert len(hub.downloads(name)) == 2


def test_a_connection_that_keeps_dropping_is_one_line(hub: LocalHub, tmp_path: Path) -> None:
    hub.drop_downloads = -1
    run = SakuraRun(["--model", REPOSITORY, "--port", str(free_port())], hub_environment(tmp_path / "hf", hub.endpoint))
    assert run.wait() == 1
    [error] = errors(run.output)
    assert error.startswith(f"Error: downloading {STEM}-Q4_K_M.gguf from {REPOSITORY} failed (RemoteProtocolError: ")
    assert error.endswith("; without network, download the .gguf file elsewhere and pass its path: --model ./FILE.gguf")
    assert "Traceback" not in run.output
    # huggingface_hub retries (and says so) before giving up; each of its warnings is logged once, in sakura's format
    lines = run.output.splitlines()
    logged = [line for line in lines if " WARNING huggingface_hub.file_download: Error while downloading" in line]
    assert len(logged) == len(hub.all_downloads()) > 1
    assert not [line for line in lines if line.startswith("Error while downloading")], "printed twice"
    assert not list((tmp_path / "hf").rglob("*.incomplete")), "a partial download was left in the cache"


def test_a_repository_without_network_is_one_line(tmp_path: Path) -> None:
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        environment = hub_environment(tmp_path / "hf", UNREACHABLE_HUB, **extra)
        [result] = resolve_in_subprocess(f"{REPOSITORY}:Q4_K_M", env=environment)
        message = result["error"]
        assert message.startswith(f"cannot download {REPOSITORY} from Hugging Face")
        assert "not in the local cache" in message
        assert "--model ./FILE.gguf" in message


def test_downloaded_files_are_found_in_the_cache_without_network(hub: LocalHub, tmp_path: Path) -> None:
    hf_home, snapshot = tmp_path / "hf", snapshot_of(tmp_path / "hf")
    resolve_in_subprocess(f"{REPOSITORY}:Q4_K_M", f"{REPOSITORY}:fp16", env=hub_environment(hf_home, hub.endpoint))
    hub.requests.clear()
    offline = hub_environment(hf_home, hub.endpoint, HF_HUB_OFFLINE="1")
    for environment in (hub_environment(hf_home, UNREACHABLE_HUB), offline):
        models = [REPOSITORY, f"{REPOSITORY}:FP16", f"{REPOSITORY}:{STEM}-fp16.gguf", f"{REPOSITORY}:iq4xs"]
        results = resolve_in_subprocess(*models, env=environment)
        assert [result.get("path") for result in results[:3]] == [
            str(snapshot / f"{STEM}-Q4_K_M.gguf"),  # the preferred quant of those in the cache
            str(snapshot / f"{STEM}-fp16.gguf"),
            str(snapshot / f"{STEM}-fp16.gguf"),
        ]
        assert results[3]["error"].startswith(f"'iq4xs' matches no file in {REPOSITORY}: choose one with --model")
    assert hub.requests == []  # HF_HUB_OFFLINE is honoured: not even the file list is asked for
