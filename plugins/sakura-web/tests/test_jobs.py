"""The jobs API on a real server with the llama.cpp engine: an .srt job against the CLI's output, proofreading,
cancelling, limits and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pysubs2
import sakura_translate.plugin
from click.testing import CliRunner
from sakura_web.options import WebOptions

from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry
from sakura_core.server.keys import STATE
from sakura_core.server.settings import ServerSettings

CUES = ["おはようございます、先輩。", "今日もいい天気ですね。", "ありがとう。", "また明日。", "さようなら。"]
#: Short chunks and answers: the tiny model reads Japanese byte by byte. Greedy, so every run answers the same.
OPTIONS = {"chunk_chars": 16, "sampling": {"max_tokens": 10, "do_sample": False}}
CLI_OPTIONS = ("--chunk-chars", "16", "--max-tokens", "10", "--greedy")


async def test_srt_job_equals_the_cli_output_and_can_be_proofread(web_server: Any, srt: Any, tmp_path: Path) -> None:
    server = await web_server()
    source = srt(tmp_path / "episode.srt", CUES)
    status, job = await server.upload("episode.srt", source.read_bytes(), OPTIONS)
    assert status == 201, job
    assert (job["state"], job["format"], job["result_name"]) == ("queued", "srt", "episode.zh.srt")
    states = await server.follow(job["id"])
    done = states[-1]
    assert done["state"] == "done", done
    assert done["chunks_done"] == done["chunks_total"] >= 3 and done["characters_done"] == done["characters_total"]
    assert any(s["state"] == "running" and 0 < s["chunks_done"] < s["chunks_total"] for s in states)
    async with server.request("GET", f"/jobs/{job['id']}/result") as response:
        assert response.status == 200
        assert "episode.zh.srt" in response.headers["Content-Disposition"]
        result = await response.read()
    # the CLI through the same server, with the same settings
    registry = PluginRegistry.create(entry_points=False, plugins=[("translate", sakura_translate.plugin)])
    args = ["translate", str(source), "--server", server.url, *CLI_OPTIONS]
    outcome = await asyncio.to_thread(CliRunner().invoke, cli, args, obj=CliState(registry))
    assert outcome.exit_code == 0, outcome.output
    assert result == (tmp_path / "episode.zh.srt").read_bytes()
    translated, original = pysubs2.SSAFile.from_string(result.decode()), pysubs2.load(str(source))
    assert [(e.start, e.end) for e in translated] == [(e.start, e.end) for e in original]

    # proofreading: chunks hold every source line once; an edit is kept in the result
    status, chunks = await server.json("GET", f"/jobs/{job['id']}/chunks")
    assert status == 200
    assert [line for chunk in chunks["data"] for line in chunk["source"]] == CUES
    first = chunks["data"][0]
    assert len(first["translation"]) == len(first["source"]) and not first["edited"]
    assert all(flag["reason"] and flag["message"] for chunk in chunks["data"] for flag in chunk["flags"])
    edited = ["早上好，前辈。"] * len(first["source"])
    status, chunk = await server.json("PUT", f"/jobs/{job['id']}/chunks/0", json={"translation": edited})
    assert status == 200 and chunk["edited"] and chunk["translation"] == edited
    async with server.request("GET", f"/jobs/{job['id']}/result") as response:
        rebuilt = pysubs2.SSAFile.from_string((await response.read()).decode())
    assert rebuilt[0].text == "早上好，前辈。" and [e.text for e in rebuilt][1:] == [e.text for e in translated][1:]
    status, error = await server.json("PUT", f"/jobs/{job['id']}/chunks/0", json={"translation": ["a", "b", "c"]})
    assert status == 400 and error["error"]["code"] == "line_count"
    # a chunk translated again goes through the model (not the cache) and drops the hand edit
    before = len(server.recorder.prompts)
    status, chunk = await server.json("POST", f"/jobs/{job['id']}/chunks/0/retranslate")
    assert status == 200 and not chunk["edited"] and len(server.recorder.prompts) > before
    status, listed = await server.json("GET", "/jobs")
    assert [j["id"] for j in listed["data"]] == [job["id"]] and listed["object"] == "list"


async def test_upload_names_never_leave_the_job_folder(web_server: Any, srt: Any, tmp_path: Path) -> None:
    server = await web_server(WebOptions(jobs_dir=tmp_path / "jobs", jobs_per_client=20))
    data = srt(tmp_path / "a.srt", CUES[:1]).read_bytes()
    kept = {}
    for name in ("../../escape.srt", "/etc/absolute.srt", "..\\..\\windows.srt", "sub/dir/../nested.srt"):
        status, job = await server.upload(name, data, OPTIONS)
        assert status == 201, (name, job)
        kept[name] = job["name"]
        await server.follow(job["id"])
    assert kept == {
        "../../escape.srt": "escape.srt",
        "/etc/absolute.srt": "absolute.srt",
        "..\\..\\windows.srt": "windows.srt",
        "sub/dir/../nested.srt": "nested.srt",
    }
    for name in ("", "..", "../"):
        status, error = await server.upload(name, data, OPTIONS)
        assert status == 400 and error["error"]["code"] in ("invalid_file_name", "missing_required_parameter"), name
    # every file written is inside a job's folder
    jobs_dir = tmp_path / "jobs"
    written = await asyncio.to_thread(lambda: [path for path in tmp_path.rglob("*") if path.is_file()])
    assert {p.name for p in written if not p.is_relative_to(jobs_dir)} == {"a.srt"}
    assert all(len(p.relative_to(jobs_dir).parts) >= 2 for p in written if p.is_relative_to(jobs_dir))


async def test_nul_and_control_characters_in_the_file_name_are_refused(
    web_server: Any, srt: Any, tmp_path: Path
) -> None:
    server = await web_server()
    data = srt(tmp_path / "a.srt", CUES[:1]).read_bytes()
    boundary = "sakuraboundary"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    for disposition, code in (
        ('filename="x\x00../../evil.srt"', "invalid_body"),  # the header parser refuses it
        ('filename="bad\x01name.srt"', "invalid_body"),
        ("filename*=UTF-8''x%00..%2F..%2Fevil.srt", "invalid_file_name"),  # decoded, then refused by the name check
        ("filename*=UTF-8''..%2F..%2F%0A", "invalid_file_name"),
    ):
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, error = await server.json("POST", "/jobs", data=body, headers=headers)
        assert status == 400 and error["error"]["code"] == code, disposition
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").rglob("*.srt"))
    assert not (tmp_path / "evil.srt").exists()


async def test_errors_are_json_and_cancel_frees_the_slots(web_server: Any, srt: Any, tmp_path: Path) -> None:
    options = WebOptions(jobs_dir=tmp_path / "jobs", max_upload_bytes=4000, jobs_per_client=1)
    server = await web_server(options)
    # 400: a file the pipeline cannot read, with the CLI's one line naming the upload (not a server path)
    status, error = await server.upload("notes.exe", b"MZ", OPTIONS)
    assert status == 400 and error["error"]["code"] == "invalid_file"
    assert error["error"]["message"].startswith("notes.exe: unsupported file type")
    status, error = await server.upload("empty.srt", b"\n\n", OPTIONS)
    assert status == 400 and error["error"]["code"] == "invalid_file" and "empty.srt" in error["error"]["message"]
    assert str(tmp_path) not in error["error"]["message"]
    status, error = await server.upload("a.srt", b"x", {"preset": "nope"})
    assert status == 400 and error["error"]["param"] == "options.preset"
    # 413 past the upload limit
    status, error = await server.upload("big.srt", b"1\n" * 3000, OPTIONS)
    assert status == 413 and error["error"]["code"] == "request_too_large"
    # a long job: 409 for its result while it runs, 429 for a second job of the same client
    many = srt(tmp_path / "long.srt", [f"{cue}{n}" for n in range(12) for cue in CUES[:2]]).read_bytes()
    status, job = await server.upload("long.srt", many, OPTIONS)
    assert status == 201
    status, error = await server.json("GET", f"/jobs/{job['id']}/result")
    assert status == 409 and error["error"]["code"] == "job_state"
    status, error = await server.upload("again.srt", many, OPTIONS)
    assert status == 429 and error["error"]["code"] == "too_many_jobs"
    # cancelling a running job ends its generations at once
    state = server.server.app[STATE]
    for _ in range(200):
        if state.scheduler.active:
            break
        await asyncio.sleep(0.01)
    assert state.scheduler.active > 0
    status, cancelled = await server.json("POST", f"/jobs/{job['id']}/cancel")
    assert status == 200 and cancelled["state"] == "cancelled"
    assert state.scheduler.active == 0 and state.scheduler.waiting == 0
    # 404 for an unknown job, in every route that names one
    for method, path in (("GET", "/jobs/0123456789abcdef"), ("GET", "/jobs/nope/chunks"), ("DELETE", "/jobs/x")):
        status, error = await server.json(method, path)
        assert status == 404 and error["error"]["code"] == "job_not_found"
    # deleting removes its files
    async with server.request("DELETE", f"/jobs/{job['id']}") as response:
        assert response.status == 204
    assert not (tmp_path / "jobs" / job["id"]).exists()


async def test_auth_covers_the_jobs_routes_and_openapi_lists_them(web_server: Any, srt: Any, tmp_path: Path) -> None:
    server = await web_server(settings=ServerSettings(api_key="sk-web"))
    data = srt(tmp_path / "a.srt", CUES[:1]).read_bytes()
    for method, path in (("GET", "/jobs"), ("GET", "/translate/info"), ("GET", "/jobs/0123456789abcdef/events")):
        status, error = await server.json(method, path)
        assert status == 401 and "error" in error, path
    status, error = await server.upload("a.srt", data, OPTIONS)
    assert status == 401 and not (tmp_path / "jobs").exists()
    server.headers["Authorization"] = "Bearer sk-web"
    status, job = await server.upload("a.srt", data, OPTIONS)
    assert status == 201
    assert (await server.follow(job["id"]))[-1]["state"] == "done"
    status, document = await server.json("GET", "/openapi.json")
    paths = document["paths"]
    for path in (
        "/translate",
        "/translate/info",
        "/jobs",
        "/jobs/{id}",
        "/jobs/{id}/events",
        "/jobs/{id}/result",
        "/jobs/{id}/cancel",
        "/jobs/{id}/chunks",
        "/jobs/{id}/chunks/{index}",
        "/jobs/{id}/chunks/{index}/retranslate",
    ):
        assert path in paths, path
    assert {"get", "delete"} <= set(paths["/jobs/{id}"]) and "put" in paths["/jobs/{id}/chunks/{index}"]


async def test_the_oldest_finished_jobs_go_past_jobs_kept(web_server: Any, srt: Any, tmp_path: Path) -> None:
    server = await web_server(WebOptions(jobs_dir=tmp_path / "jobs", jobs_kept=2))
    data = srt(tmp_path / "a.srt", CUES[:1]).read_bytes()
    finished = []
    for name in ("first.srt", "second.srt", "third.srt"):
        status, job = await server.upload(name, data, OPTIONS)
        assert status == 201, job
        assert (await server.follow(job["id"]))[-1]["state"] == "done"
        finished.append(job["id"])
    status, listed = await server.json("GET", "/jobs")
    assert [job["id"] for job in listed["data"]] == [finished[2], finished[1]]
    assert not (tmp_path / "jobs" / finished[0]).exists() and (tmp_path / "jobs" / finished[1]).is_dir()
    status, error = await server.json("GET", f"/jobs/{finished[0]}")
    assert status == 404 and error["error"]["code"] == "job_not_found"


async def test_an_upload_that_stops_arriving_is_a_408_and_writes_nothing(web_server: Any, tmp_path: Path) -> None:
    server = await web_server(settings=ServerSettings(body_timeout_seconds=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.server.port)
    boundary = "sakura-test-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.srt"\r\n\r\n1\r\n'
    writer.write(
        (
            "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n{head}"
        ).encode()
    )
    await writer.drain()
    head_of_answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()
    assert head_of_answer.startswith(b"HTTP/1.1 408"), head_of_answer
    assert b"application/json" in head_of_answer
    assert not any((tmp_path / "jobs").rglob("slow.srt"))
    status, listed = await server.json("GET", "/jobs")
    assert status == 200 and listed["data"] == []


async def test_the_page_can_ask_whether_a_key_is_needed(web_server: Any) -> None:
    open_server = await web_server()
    assert await open_server.json("GET", "/translate/auth") == (200, {"required": False, "schemes": []})
    keyed = await web_server(settings=ServerSettings(api_key="sk-web"))
    assert await keyed.json("GET", "/translate/auth") == (200, {"required": True, "schemes": ["bearer", "basic"]})
    basic = await web_server(settings=ServerSettings(basic_auth=("reader", "s3cret")))
    assert await basic.json("GET", "/translate/auth") == (200, {"required": True, "schemes": ["basic"]})
