"""The ollama engine against a local server that speaks Ollama's documented API and generates with llama.cpp.

The engine under test is unchanged: the real ``ollama`` client talks HTTP to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from pathlib import Path

import llama_cpp
import pytest
from aiohttp import web
from sakura_ollama.api import file_digest
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.options import OllamaOptions
from sakura_ollama.testing import EngineFactory, chatml, collect
from sakura_ollama.testing.api_server import OllamaAPIServer, running_api_server

from sakura_core.engine import EngineError, ModelLoadError
from sakura_core.engine_runner import EngineRunner
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.ports import free_port
from sakura_core.types import ModelInfo, SamplingParams

PROMPT = chatml("やる気マンゴスキン")
LONG_PROMPT = chatml("彼女は窓の外を眺めながら、小さくため息をついた。")


def greedy(max_tokens: int, **changes) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, do_sample=False, **changes)


def reference_tokens(gguf: Path, prompt: str, limit: int) -> tuple[list[int], bool]:
    """llama.cpp's own greedy tokens for ``prompt`` (without the end token) and whether it ended on one."""
    llm = llama_cpp.Llama(str(gguf), n_ctx=512, n_threads=2, verbose=False)
    try:
        tokens: list[int] = []
        prompt_tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        for token in llm.generate(prompt_tokens, top_k=1, temp=0.0, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                return tokens, True
            tokens.append(token)
            if len(tokens) >= limit:
                return tokens, False
        raise AssertionError("unreachable")
    finally:
        llm.close()


# -- importing a local GGUF ------------------------------------------------------------------------------------


async def test_local_gguf_is_uploaded_and_created_from_files(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    digest = file_digest(tiny_gguf)
    calls = [(method, path) for method, path, _ in api_server.requests]
    assert calls[:4] == [
        ("GET", "/api/version"),
        ("HEAD", f"/api/blobs/{digest}"),
        ("POST", f"/api/blobs/{digest}"),
        ("POST", "/api/create"),
    ]
    create = next(body for method, path, body in api_server.requests if path == "/api/create")
    assert create["model"] == "sakura-tiny-qwen2-v1.0-f32"
    assert create["files"] == {tiny_gguf.name: digest}
    assert engine.ollama_model == "sakura-tiny-qwen2-v1.0-f32"
    assert "sakura-tiny-qwen2-v1.0-f32:latest" in api_server.models
    info = engine.model_info
    assert info is not None
    assert (info.id, info.name, info.version, info.quant) == (
        "sakura-tiny-qwen2-v1.0-f32",
        "sakura-tiny-qwen2",
        "1.0",
        "f32",
    )
    assert served_format(info) == "v1.0"
    assert info.path == str(tiny_gguf)
    # the model is loaded into memory at start: an empty prompt with the context size every request uses
    load = [body for _, path, body in api_server.requests if path == "/api/generate"][-1]
    assert load["prompt"] == "" and load["options"] == {"num_ctx": 2048}


async def test_meta_is_what_llama_cpp_reads_from_the_model(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    assert engine.model_info is not None
    llm = llama_cpp.Llama(str(tiny_gguf), n_ctx=64, verbose=False)
    try:
        expected = {
            "vocab_type": llama_cpp.llama_vocab_type(llm._model.vocab),
            "n_vocab": llm.n_vocab(),
            "n_ctx_train": llm._model.n_ctx_train(),
            "n_embd": llm.n_embd(),
            "n_params": llm._model.n_params(),
            "size": llm._model.size(),
        }
    finally:
        llm.close()
    assert engine.model_info.meta == expected


async def test_an_uploaded_blob_is_not_sent_again(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    await make_engine(api_server, tiny_gguf)
    api_server.requests.clear()
    await make_engine(api_server, tiny_gguf)
    blob_calls = [method for method, path, _ in api_server.requests if path.startswith("/api/blobs/")]
    assert blob_calls == ["HEAD"]


async def test_an_old_server_that_refuses_files_gets_a_modelfile(
    tmp_path: Path, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    async with running_api_server(tmp_path / "old", accepts_files=False, version="0.5.4") as server:
        engine = await make_engine(server, tiny_gguf)
        creates = [body for _, path, body in server.requests if path == "/api/create"]
        digest = file_digest(tiny_gguf)
        assert len(creates) == 2
        assert "files" in creates[0]
        assert creates[1]["modelfile"] == f"FROM @{digest}\n"
        assert engine.server_version == "0.5.4"
        deltas = await collect(engine, PROMPT, greedy(8))
        assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 8


async def test_a_file_that_is_no_gguf_is_refused_with_the_servers_reason(
    api_server: OllamaAPIServer, tmp_path: Path
) -> None:
    bogus = tmp_path / "sakura-broken-v1.0.gguf"
    bogus.write_bytes(b"not a model at all")
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False))
    with pytest.raises(ModelLoadError) as caught:
        await engine.load(str(bogus))
    assert str(caught.value) == "Ollama could not create a model from sakura-broken-v1.0.gguf: invalid file magic"
    assert [path for _, path, _ in api_server.requests].count("/api/create") == 1  # a current server: no second try


async def test_a_missing_file_is_a_clear_error(api_server: OllamaAPIServer, tmp_path: Path) -> None:
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False))
    with pytest.raises(ModelLoadError, match=r"model file not found: .*nothing-here\.gguf"):
        await engine.load(str(tmp_path / "nothing-here.gguf"))


# -- tags and pulling ------------------------------------------------------------------------------------------


async def test_a_tag_the_server_has_is_served_with_its_identity(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    api_server.add_model("onekuma/sakura-13b-lnovel-v0.9b-q2_k", tiny_gguf)
    engine = await make_engine(api_server, "onekuma/sakura-13b-lnovel-v0.9b-q2_k")
    assert not any(path == "/api/create" for _, path, _ in api_server.requests)
    assert not any(path == "/api/pull" for _, path, _ in api_server.requests)
    info = engine.model_info
    assert info is not None
    assert (info.id, info.name, info.version, info.quant, served_format(info)) == (
        "sakura-13b-lnovel-v0.9b-q2_k",
        "sakura-13b-lnovel",
        "0.9b",
        "q2_k",
        "v0.9",
    )


async def test_model_version_and_num_ctx_options(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    api_server.add_model("translator:latest", tiny_gguf)
    engine = await make_engine(api_server, "translator", model_version="0.10", num_ctx=512)
    assert engine.model_info is not None
    assert engine.model_info.version == "0.10" and served_format(engine.model_info) == "v0.10"
    assert engine.model_info.id == "translator-v0.10"
    assert engine.model_info.context_length == 512
    assert engine.model_info.quant == "F32"  # from /api/show's details: the tag names none
    await collect(engine, PROMPT, greedy(2))
    assert api_server.generations[-1].options["num_ctx"] == 512


async def test_the_modelfiles_num_ctx_is_the_default_context(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    api_server.add_model("sakura-long-v1.0", tiny_gguf, parameters={"num_ctx": [1024]})
    engine = await make_engine(api_server, "sakura-long-v1.0")
    assert engine.model_info is not None and engine.model_info.context_length == 1024


async def test_a_missing_tag_is_pulled_with_a_progress_bar_per_layer(
    tmp_path: Path, make_engine: EngineFactory, tiny_gguf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = "onekuma/sakura-tiny-v0.9b-f32"
    async with running_api_server(tmp_path / "models", library={tag: tiny_gguf}) as server:
        engine = await make_engine(server, tag)
        assert "onekuma/sakura-tiny-v0.9b-f32:latest" in server.models
        assert engine.model_info is not None and engine.model_info.version == "0.9b"
        deltas = await collect(engine, PROMPT, greedy(4))
        assert deltas[-1].completion_tokens == 4
    err = capsys.readouterr().err
    digest = file_digest(tiny_gguf).removeprefix("sha256:")
    lines = err.splitlines()
    assert lines[0] == "pulling manifest"
    bars = [line for line in lines if line.startswith("pulling ") and "%" in line]
    assert any(line.startswith(f"pulling {digest[:12]}: 100% ▕") for line in bars), err
    assert len({line.split(":")[0] for line in bars}) == 2, "one bar per layer"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]


async def test_no_pull_names_the_command_that_fetches_the_model(api_server: OllamaAPIServer) -> None:
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False, pull=False))
    with pytest.raises(ModelLoadError, match=r"has no model 'sakura-absent-v1\.0': .*ollama pull sakura-absent-v1\.0"):
        await engine.load("sakura-absent-v1.0")
    assert not any(path == "/api/pull" for _, path, _ in api_server.requests)


async def test_a_tag_the_library_lacks_fails_with_the_servers_reason(
    api_server: OllamaAPIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False))
    with pytest.raises(ModelLoadError, match=r"could not pull 'nobody/nothing': pull model manifest: file does not"):
        await engine.load("nobody/nothing")
    assert "pulling manifest" in capsys.readouterr().err


# -- errors at start -------------------------------------------------------------------------------------------


async def test_no_server_and_no_spawn_is_one_line_naming_the_fixes() -> None:
    port = free_port()
    engine = OllamaEngine(OllamaOptions(ollama_host=f"127.0.0.1:{port}", spawn=False))
    with pytest.raises(ModelLoadError) as caught:
        await engine.load("sakura-anything-v1.0")
    message = str(caught.value)
    assert message.startswith(f"no Ollama server answers at http://127.0.0.1:{port}")
    assert "ollama serve" in message and "--ollama-host" in message and "\n" not in message


async def test_no_server_and_no_ollama_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = OllamaEngine(OllamaOptions(ollama_host=f"127.0.0.1:{free_port()}", spawn=True))
    with pytest.raises(ModelLoadError, match=r"`ollama` is not on PATH: install Ollama"):
        await engine.load("sakura-anything-v1.0")


async def test_something_that_is_not_ollama_is_told_apart() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        engine = OllamaEngine(OllamaOptions(ollama_host=f"http://127.0.0.1:{port}", spawn=False))
        with pytest.raises(ModelLoadError, match=r"not as Ollama does \(HTTP 404 for /api/version\)"):
            await engine.load("sakura-anything-v1.0")
    finally:
        await runner.cleanup()


async def test_out_of_memory_at_load_is_one_line_with_what_to_try(api_server: OllamaAPIServer, tiny_gguf: Path) -> None:
    api_server.add_model("sakura-huge-v1.0", tiny_gguf)
    api_server.load_error = "model requires more system memory (64.0 GiB) than is available (7.5 GiB)"
    engine = OllamaEngine(OllamaOptions(ollama_host=api_server.url, spawn=False))
    with pytest.raises(ModelLoadError) as caught:
        await engine.load("sakura-huge-v1.0")
    assert str(caught.value) == (
        "Ollama cannot load 'sakura-huge-v1.0': model requires more system memory (64.0 GiB) than is available "
        "(7.5 GiB); use a smaller quantisation, a lower --num-ctx or --parallel"
    )


# -- generation ------------------------------------------------------------------------------------------------


async def test_generation_is_raw_with_options_mapped_one_to_one(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf, keep_alive="10m")
    params = SamplingParams(
        max_tokens=7,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
        frequency_penalty=0.05,
        presence_penalty=0.1,
        seed=42,
        stop=["\u2603"],
    )
    await collect(engine, PROMPT, params)
    generate = [body for _, path, body in api_server.requests if path == "/api/generate"][-1]
    assert generate["raw"] is True and generate["stream"] is True and generate["prompt"] == PROMPT
    assert generate["keep_alive"] == "10m"
    assert generate["options"] == {
        "num_predict": 7,
        "num_ctx": 2048,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "repeat_penalty": 1.05,
        "frequency_penalty": 0.05,
        "presence_penalty": 0.1,
        "seed": 42,
        "stop": ["\u2603"],
    }


async def test_greedy_is_temperature_zero_and_top_k_one(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf, keep_alive="-1")
    await collect(engine, PROMPT, SamplingParams(max_tokens=3, do_sample=False, temperature=0.9, top_k=50))
    generate = [body for _, path, body in api_server.requests if path == "/api/generate"][-1]
    assert generate["keep_alive"] == -1  # a number of seconds, as Ollama takes it; negative: keep loaded
    assert generate["options"]["temperature"] == 0.0 and generate["options"]["top_k"] == 1
    assert "seed" not in generate["options"]


async def test_output_and_counts_match_llama_cpp_when_the_limit_cuts(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    deltas = await collect(engine, LONG_PROMPT, greedy(24))
    _, ended = reference_tokens(tiny_gguf, LONG_PROMPT, 24)
    assert not ended
    final = deltas[-1]
    assert (final.finish_reason, final.completion_tokens) == ("length", 24)
    assert api_server.generations[-1].eval_count == 24
    assert all(d.finish_reason is None for d in deltas[:-1])
    llm = llama_cpp.Llama(str(tiny_gguf), n_ctx=64, verbose=False, vocab_only=True)
    expected_prompt_tokens = len(llm.tokenize(LONG_PROMPT.encode(), add_bos=True, special=True))
    llm.close()
    assert {d.prompt_tokens for d in deltas} == {expected_prompt_tokens}
    # with logprobs every chunk says how many tokens it carries: the running count is exact
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts) and counts[-1] == 24


async def test_the_end_token_ends_the_output_and_is_not_counted(
    api_server: OllamaAPIServer, make_engine: EngineFactory, ending_gguf: Path
) -> None:
    engine = await make_engine(api_server, ending_gguf)
    prompt = chatml("やる気マンゴスキン")
    tokens, ended = reference_tokens(ending_gguf, prompt, 64)
    assert ended, "the test model must end this answer"
    # the server adds the prompt format's end markers to every request's stop strings
    deltas = await collect(engine, prompt, greedy(64, stop=["<|im_end|>", "<|endoftext|>"]))
    assert deltas[-1].finish_reason == "stop"
    assert api_server.generations[-1].eval_count == len(tokens) + 1  # Ollama counts the end token
    assert deltas[-1].completion_tokens == len(tokens)


async def test_a_stop_string_is_cut_by_ollama_and_counted(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    full = "".join(d.text for d in await collect(engine, LONG_PROMPT, greedy(24)))
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    deltas = await collect(engine, LONG_PROMPT, greedy(24, stop=[stop, "<|im_end|>"]))
    text = "".join(d.text for d in deltas)
    assert text == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    assert api_server.generations[-1].options["stop"] == [stop, "<|im_end|>"]
    # the tokens up to the one that completed the stop string, as Ollama counted them
    assert deltas[-1].completion_tokens == api_server.generations[-1].eval_count < 24


async def test_prompt_tokens_are_counted_when_ollama_leaves_them_out(
    tmp_path: Path, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    async with running_api_server(tmp_path / "m", omit_prompt_eval_count_on_cache_hit=True) as server:
        engine = await make_engine(server, tiny_gguf)
        first = await collect(engine, PROMPT, greedy(3))
        second = await collect(engine, PROMPT, greedy(3))
    assert first[-1].prompt_tokens == second[-1].prompt_tokens == engine.count_tokens(PROMPT) > 0


async def test_a_server_without_logprobs_still_gives_exact_final_counts(
    tmp_path: Path, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    async with running_api_server(tmp_path / "m", supports_logprobs=False) as server:
        engine = await make_engine(server, tiny_gguf)
        deltas = await collect(engine, LONG_PROMPT, greedy(24))
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts)
    assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("length", 24)


async def test_concurrent_generations_are_sent_together(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf, parallel=3)
    assert engine.parallelism == 3
    prompts = [chatml(t) for t in ("一", "二", "三")]
    solo = [await collect(engine, p, greedy(12)) for p in prompts]
    together = await asyncio.gather(*(collect(engine, p, greedy(12)) for p in prompts))
    for alone, mixed in zip(solo, together, strict=True):
        assert "".join(d.text for d in alone) == "".join(d.text for d in mixed)
    assert engine.active_generations == 0


# -- errors while serving --------------------------------------------------------------------------------------


async def test_an_error_line_mid_stream_is_an_engine_error(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    api_server.fail_after_chunks = 2
    received = []
    with pytest.raises(EngineError, match=r"^Ollama failed: an error was encountered while running the model$"):
        async for delta in engine.generate(LONG_PROMPT, greedy(40)):
            received.append(delta)
    assert received and engine.active_generations == 0


async def test_a_model_removed_from_the_server_is_an_engine_error(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    api_server.models.clear()
    with pytest.raises(EngineError, match=r"Ollama no longer has the model 'sakura-tiny-qwen2-v1\.0-f32'"):
        await collect(engine, PROMPT, greedy(4))
    assert engine.active_generations == 0


async def test_a_server_gone_while_serving_is_an_engine_error(tmp_path: Path, tiny_gguf: Path) -> None:
    server = OllamaAPIServer(tmp_path / "m")
    await server.start()
    engine = OllamaEngine(OllamaOptions(ollama_host=server.url, spawn=False))
    try:
        await engine.load(str(tiny_gguf))
        await server.stop()
        with pytest.raises(EngineError, match=rf"^cannot reach Ollama at http://127\.0\.0\.1:{server.port}"):
            await collect(engine, PROMPT, greedy(4))
        assert engine.active_generations == 0
    finally:
        await engine.close()
        await server.stop()


# -- disconnects -----------------------------------------------------------------------------------------------


async def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_aclose_closes_the_ollama_stream_and_stops_the_generation(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    stream = engine.generate(LONG_PROMPT, greedy(2000))
    await anext(stream)
    assert engine.active_generations == 1
    await stream.aclose()
    assert engine.active_generations == 0
    await wait_for(lambda: api_server.generations[-1].outcome == "cancelled")
    await wait_for(lambda: api_server.active_generations == 0)
    # the server is free at once: the next generation does not wait for 2000 tokens
    deltas = await asyncio.wait_for(collect(engine, PROMPT, greedy(4)), 10)
    assert deltas[-1].completion_tokens == 4


async def test_a_generation_that_reaches_max_tokens_ends_on_ollamas_last_chunk(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    """Through the core's runner, which ends a generation at ``max_tokens`` by closing the engine's stream: the
    engine reads on to Ollama's own last chunk instead of having its stream closed as Ollama finishes (a race the
    real Ollama's runner can hang on), so the final delta carries Ollama's prompt count."""
    engine = await make_engine(api_server, tiny_gguf)
    runner = EngineRunner(engine)
    for limit in (1, 3):
        deltas = [delta async for delta in runner.stream(LONG_PROMPT, greedy(limit))]
        assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("length", limit)
        assert deltas[-1].prompt_tokens == engine.count_tokens(LONG_PROMPT) > 0
        assert api_server.generations[-1].outcome == "done"


async def test_cancelling_the_consuming_task_closes_the_ollama_stream(
    api_server: OllamaAPIServer, make_engine: EngineFactory, tiny_gguf: Path
) -> None:
    engine = await make_engine(api_server, tiny_gguf)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.generate(LONG_PROMPT, greedy(2000)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert engine.active_generations == 0
    await wait_for(lambda: api_server.generations[-1].outcome == "cancelled")


# -- the client's own parsing of what this server sends --------------------------------------------------------


async def test_the_api_server_answers_as_the_documentation_says(api_server: OllamaAPIServer, tiny_gguf: Path) -> None:
    import ollama

    api_server.add_model("sakura-doc-v1.0", tiny_gguf)
    client = ollama.AsyncClient(host=api_server.url)
    listed = await client.list()
    assert [m.model for m in listed.models] == ["sakura-doc-v1.0:latest"]
    assert listed.models[0].details is not None and listed.models[0].details.family == "qwen2"
    shown = await client.show("sakura-doc-v1.0")
    assert shown.modelinfo is not None and shown.modelinfo["tokenizer.ggml.tokens"] == []  # arrays need verbose
    with pytest.raises(ollama.ResponseError) as missing:
        await client.show("absent")
    assert missing.value.status_code == 404
    whole = await client.generate("sakura-doc-v1.0", PROMPT, raw=True, options={"num_predict": 5, "top_k": 1})
    assert whole.done and whole.done_reason == "length" and whole.eval_count == 5 and whole.response
    await client.close()


def test_pull_progress_is_written_to_stderr_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from sakura_ollama.progress import PullProgress

    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    progress = PullProgress()
    progress.update({"status": "pulling manifest"})
    progress.finish()
    assert buffer.getvalue() == "pulling manifest\n"


def served_format(info: ModelInfo | None) -> str:
    """The prompt format the core serves a model of this identity with (engines report identity only)."""
    assert info is not None
    return PluginRegistry.create(entry_points=False).prompt_format_for(info).name
