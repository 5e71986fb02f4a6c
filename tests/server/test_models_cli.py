"""``sakura run`` with ``--model`` repeated: two tiny GGUFs behind one llama.cpp server, each its own prompt format."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import spawn_sakura


@pytest.fixture(scope="module")
def v15_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny GGUF, named like a Sakura v1.5 model."""
    from sakura_llamacpp.tiny_model import write_tiny_gguf

    folder = tmp_path_factory.mktemp("tiny-v15")
    return write_tiny_gguf(folder / "sakura-tiny-qwen3-v1.5.gguf", name="sakura-tiny-qwen3-v1.5", seed=1)


def _post(port: int, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 4}


def test_two_models_each_served_by_name(tiny_gguf: Path, v15_gguf: Path, tmp_path: Path) -> None:
    server = spawn_sakura(tiny_gguf, tmp_path, "-m", f"v15={v15_gguf}", "--default-model", "v15")
    try:
        status, raw = server.get("/v1/models")
        assert status == 200
        cards = json.loads(raw)["data"]
        assert [card["id"] for card in cards] == ["sakura-tiny-qwen3-v1.5", tiny_gguf.stem]
        assert [card["status"]["value"] for card in cards] == ["loaded", "unloaded"]  # loaded on demand
        assert [card["model_version"] for card in cards] == ["1.5", None]
        assert _post(server.port, _chat("v15"))["model"] == "sakura-tiny-qwen3-v1.5"
        assert _post(server.port, _chat(""))["model"] == "sakura-tiny-qwen3-v1.5"
        assert _post(server.port, _chat(tiny_gguf.stem))["model"] == tiny_gguf.stem
        assert _post(server.port, _chat("gpt-3.5-turbo"))["model"] == "sakura-tiny-qwen3-v1.5"
        cards = json.loads(server.get("/v1/models")[1])["data"]
        assert [card["status"]["value"] for card in cards] == ["loaded", "loaded"]
        assert [card["model_version"] for card in cards] == ["1.5", "1.0"]
    finally:
        assert server.stop() == 0


def test_an_unknown_default_model_is_one_line_and_exit_2(tiny_gguf: Path) -> None:
    command = [sys.executable, "-m", "sakura_core.cli", "run", "-m", str(tiny_gguf), "--default-model", "nope"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--default-model 'nope' names none of the models" in done.stderr
    assert "Traceback" not in done.stderr


def test_models_dir_serves_every_model_in_it(tiny_gguf: Path, v15_gguf: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a-first.gguf").symlink_to(tiny_gguf)
    (folder / "b-second-qwen3-v1.5.gguf").symlink_to(v15_gguf)
    (folder / "big-00002-of-00002.gguf").write_bytes(b"")  # a later part of a split model: not a model of its own
    (folder / "mmproj-f16.gguf").write_bytes(b"")
    (folder / "notes.txt").write_text("not a model")
    server = spawn_sakura(tiny_gguf, tmp_path, "--models-dir", str(folder))
    try:
        cards = json.loads(server.get("/v1/models")[1])["data"]
        # the --model file is not served twice; the folder's models follow it, by name
        assert [card["id"] for card in cards] == [tiny_gguf.stem, "b-second-qwen3-v1.5"]
        assert _post(server.port, _chat("b-second-qwen3-v1.5"))["model"] == "b-second-qwen3-v1.5"  # the file name
    finally:
        assert server.stop() == 0


def test_models_dir_without_models_is_one_line_and_exit_2(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sakura_core.cli", "run", "--models-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no GGUF file or model folder in it" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_model_with_its_own_engine(tiny_gguf: Path, tmp_path: Path) -> None:
    """``--model ALIAS=ENGINE:PATH``: the echo engine serves one model beside llama.cpp's."""
    server = spawn_sakura(tiny_gguf, tmp_path, "-m", "echo=echo:models/sakura-7b-qwen2.5-v0.9-iq4xs.gguf")
    try:
        assert _post(server.port, _chat("echo"))["model"] == "sakura-7b-qwen2.5-v0.9-iq4xs"
        assert _post(server.port, _chat(""))["model"] == tiny_gguf.stem
        cards = json.loads(server.get("/v1/models")[1])["data"]
        assert cards[1]["model_version"] == "0.9"
    finally:
        assert server.stop() == 0


def test_model_specs_keep_tags_and_paths_whole() -> None:
    from sakura_core.model_specs import ModelSpec

    engines = {"llamacpp", "vllm", "ollama"}
    assert ModelSpec.parse("onekuma/sakura-13b:q2_k", engines) == ModelSpec("onekuma/sakura-13b:q2_k")
    assert ModelSpec.parse("ollama:onekuma/sakura:q2_k", engines) == ModelSpec("onekuma/sakura:q2_k", engine="ollama")
    assert ModelSpec.parse("v10=vllm:./Sakura-14B", engines) == ModelSpec("./Sakura-14B", "v10", "vllm")
    assert ModelSpec.parse("./a=b.gguf", engines) == ModelSpec("./a=b.gguf")
    assert ModelSpec.parse("C:\\models\\x.gguf", engines) == ModelSpec("C:\\models\\x.gguf")


async def test_translate_chooses_a_served_model(tiny_gguf: Path, v15_gguf: Path, tmp_path: Path) -> None:
    """``sakura translate --server URL --model ID``: the chosen model's id, prompt format and slots."""
    from sakura_translate.backends import HttpBackend
    from sakura_translate.errors import InputError

    from sakura_core.plugins import PluginRegistry

    registry = PluginRegistry.create(entry_points=False)
    server = spawn_sakura(tiny_gguf, tmp_path, "-m", f"v15={v15_gguf}")
    try:
        url = f"http://127.0.0.1:{server.port}"
        default = await HttpBackend.connect(url, None, registry, None)
        chosen = await HttpBackend.connect(url, None, registry, None, served_model="sakura-tiny-qwen3-v1.5.gguf")
        try:
            assert default.model_id == tiny_gguf.stem
            assert chosen.model_id == "sakura-tiny-qwen3-v1.5"
            assert chosen.prompt_format.name != default.prompt_format.name
            assert chosen.parallelism >= 1
        finally:
            await default.close()
            await chosen.close()
        with pytest.raises(InputError, match="serves no model 'nope'"):
            await HttpBackend.connect(url, None, registry, None, served_model="nope")
    finally:
        assert server.stop() == 0
