"""A job survives a restart of a real ``sakura run``: stopped with SIGTERM mid-job, started again on the same jobs
folder, it finishes from the pipeline's resume cache without generating the finished chunks again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sakura_core.testing.ports import free_port

SAKURA = [sys.executable, "-c", "from sakura_core.cli import main; main()"]
CUES = [f"{word}{n}" for n in range(8) for word in ("おはよう", "ありがとう", "さようなら")]
#: One cue a chunk, short greedy answers: every chunk costs the same generations in both runs.
OPTIONS = {"chunk_chars": 8, "sampling": {"max_tokens": 8, "do_sample": False}}


async def generations(session: aiohttp.ClientSession, url: str) -> float:
    """Every generation the server ran (sakura_generations_total over its outcomes)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(url + "/metrics") as response:
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return sum(sample.value for sample in families["sakura_generations"].samples if sample.name.endswith("_total"))


Start = Callable[[], Awaitable[tuple[asyncio.subprocess.Process, str]]]


@pytest.fixture
async def sakura_run(tiny_gguf: Path, tmp_path: Path) -> AsyncIterator[Start]:
    """``await sakura_run()``: ``sakura run`` on the tiny model with the test's jobs folder, once /health is ok."""
    processes: list[asyncio.subprocess.Process] = []

    async def start() -> tuple[asyncio.subprocess.Process, str]:
        port = free_port()
        log = (tmp_path / f"sakura-{len(processes)}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            *SAKURA, "run", "--engine", "llamacpp", "--model", str(tiny_gguf), "--listen", f"127.0.0.1:{port}",
            "--no-auth", "-np", "1", "--n-ctx", "512", "--threads", "1", "--jobs-dir", str(tmp_path / "jobs"),
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                assert process.returncode is None, (tmp_path / f"sakura-{len(processes) - 1}.log").read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url + "/health") as response:
                        if response.status == 200:
                            return process, url
                assert time.monotonic() < deadline, "sakura run did not become healthy"
                await asyncio.sleep(0.1)

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_job_continues_after_a_restart(sakura_run: Start, srt: Any, tmp_path: Path) -> None:
    source = srt(tmp_path / "long.srt", CUES)
    process, url = await sakura_run()
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("file", source.read_bytes(), filename="long.srt")
        form.add_field("options", json.dumps(OPTIONS))
        async with session.post(url + "/jobs", data=form) as response:
            assert response.status == 201, await response.text()
            job = await response.json()
        async with session.get(f"{url}/jobs/{job['id']}/events") as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("data: ") and json.loads(line[6:])["chunks_done"] >= 3:
                    break
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    folder = tmp_path / "jobs" / job["id"]
    assert json.loads((folder / "job.json").read_text())["job"]["state"] in ("running", "queued")
    cache = folder / "output" / "long.zh.srt.sakura-cache.jsonl"
    first = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert 3 <= len(first) < job["chunks_total"]  # stopped mid-job, the finished chunks saved

    process, url = await sakura_run()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/jobs/{job['id']}/events") as response:
            states = []
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    states.append(json.loads(line[6:]))
        assert states[-1]["state"] == "done", states[-1]
        async with session.get(f"{url}/jobs/{job['id']}/result") as response:
            assert response.status == 200
            assert (await response.read()).decode().count("-->") == len(CUES)
        second_run = await generations(session, url)
    records = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    done_before = {record["key"] for record in first}
    added = [record for record in records if record["key"] not in done_before]
    assert len(records) == job["chunks_total"] == len(first) + len(added)  # no chunk generated twice
    # the second run generated exactly the chunks the first had not finished
    assert second_run == sum(record["generations"] for record in added)
    assert second_run < sum(record["generations"] for record in records)
