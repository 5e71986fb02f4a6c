"""The ollama engine's small parts: addresses, options, sampling, final counts, progress bars, model details."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError
from sakura_ollama.api import OllamaAddress
from sakura_ollama.engine import OllamaEngine
from sakura_ollama.model_details import context_length, llama_server_meta, modelfile_parameters, quantization
from sakura_ollama.model_source import local_model_file, ollama_name_for_file, takes_files
from sakura_ollama.options import DEFAULT_OLLAMA_HOST, OllamaOptions, keep_alive_value
from sakura_ollama.process import OllamaServerProcess
from sakura_ollama.progress import PullProgress, human_bytes
from sakura_ollama.sampling import SAKURA_END_MARKERS, final_counts, ollama_options, text_stops

from sakura_core.plugins import PluginRegistry
from sakura_core.types import SamplingParams


@pytest.mark.parametrize(
    ("value", "url", "listen", "local"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434", "127.0.0.1:11434", True),
        ("localhost", "http://localhost:11434", "localhost:11434", True),
        (":5000", "http://127.0.0.1:5000", "127.0.0.1:5000", True),
        ("0.0.0.0", "http://127.0.0.1:11434", "127.0.0.1:11434", True),
        ("http://gpu-box.lan", "http://gpu-box.lan:80", "gpu-box.lan:80", False),
        ("https://ollama.example.com/", "https://ollama.example.com:443", "ollama.example.com:443", False),
        ("[::1]:8000", "http://[::1]:8000", "[::1]:8000", True),
        ("192.168.1.20:11434", "http://192.168.1.20:11434", "192.168.1.20:11434", False),
    ],
)
def test_addresses_are_read_as_ollama_host_is(value: str, url: str, listen: str, local: bool) -> None:
    address = OllamaAddress.parse(value)
    assert (address.url, address.listen, address.is_local) == (url, listen, local)


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(ValueError, match="bad port"):
        OllamaAddress.parse("127.0.0.1:port")


def test_the_default_host_follows_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert OllamaOptions().ollama_host == DEFAULT_OLLAMA_HOST
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:1234")
    assert OllamaOptions().ollama_host == "10.0.0.5:1234"


def test_option_values_are_checked() -> None:
    with pytest.raises(ValidationError):
        OllamaOptions(parallel=0)
    with pytest.raises(ValidationError):
        OllamaOptions(num_ctx=4)
    with pytest.raises(ValidationError):
        OllamaOptions(keep_alive=" ")
    with pytest.raises(ValidationError):
        OllamaOptions(ollama_host="")
    with pytest.raises(ValidationError, match="bad port"):
        OllamaOptions(ollama_host="127.0.0.1:eleven")
    options = OllamaOptions(keep_alive=" 1h ", parallel=8)
    assert (options.keep_alive, options.parallel, options.pull, options.spawn) == ("1h", 8, True, True)


def test_keep_alive_numbers_are_seconds() -> None:
    assert keep_alive_value(None) is None
    assert keep_alive_value("-1") == -1
    assert keep_alive_value("300") == 300
    assert keep_alive_value("1.5") == 1.5
    assert keep_alive_value("30m") == "30m"


def test_the_engine_is_registered_through_the_entry_point() -> None:
    registered = PluginRegistry.create().engine("ollama")
    assert registered.engine_class is OllamaEngine
    assert registered.distribution == "sakura-ollama"


def test_sampling_maps_one_to_one() -> None:
    params = SamplingParams(
        max_tokens=100,
        temperature=0.3,
        top_p=0.5,
        top_k=0,
        repetition_penalty=1.1,
        frequency_penalty=0.2,
        presence_penalty=-0.1,
        seed=9,
        stop="###",
    )
    assert ollama_options(params, num_ctx=1024) == {
        "num_predict": 100,
        "num_ctx": 1024,
        "temperature": 0.3,
        "top_p": 0.5,
        "top_k": 0,
        "repeat_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": -0.1,
        "seed": 9,
        "stop": ["###"],
    }
    greedy = ollama_options(SamplingParams(do_sample=False, seed=-1), num_ctx=2048)
    assert (greedy["temperature"], greedy["top_k"], greedy["top_p"]) == (0.0, 1, 1.0)
    assert "seed" not in greedy and greedy["stop"] == []
    assert ollama_options(SamplingParams(temperature=0.0), num_ctx=2048)["top_k"] == 1


def test_text_stops_leave_out_end_markers() -> None:
    assert text_stops(["<|im_end|>", "\n\n", "", "</s>"], SAKURA_END_MARKERS) == ["\n\n"]
    assert SAKURA_END_MARKERS == {"<|im_end|>", "<|endoftext|>", "</s>"}


@pytest.mark.parametrize(
    ("done_reason", "eval_count", "text_stop", "expected"),
    [
        ("length", 16, False, ("length", 16)),
        ("length", None, False, ("length", 16)),
        ("stop", 10, False, ("stop", 9)),  # the end token is not counted
        ("stop", 10, True, ("stop", 10)),  # a stop string's tokens are
        ("stop", 0, False, ("stop", 0)),
        ("stop", None, True, ("stop", 0)),
        ("limit", 16, False, ("length", 16)),
    ],
)
def test_final_counts(done_reason: str, eval_count: int | None, text_stop: bool, expected: tuple) -> None:
    counts = final_counts(done_reason, eval_count, SamplingParams(max_tokens=16), text_stop=text_stop)
    assert (counts.finish_reason, counts.completion_tokens) == expected


def test_names_for_imported_files() -> None:
    assert ollama_name_for_file(Path("/m/sakura-7b-qwen2.5-v1.0-iq4xs.gguf")) == "sakura-7b-qwen2.5-v1.0-iq4xs"
    assert ollama_name_for_file(Path("Sakura 13B (v0.9b) Q4_K_M.gguf")) == "Sakura-13B-v0.9b-Q4_K_M"
    assert ollama_name_for_file(Path("..gguf")) == "sakura-model"


def test_local_files_and_tags_are_told_apart(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"x")
    assert local_model_file(str(model)) == model
    assert local_model_file("./missing.gguf") == Path("missing.gguf")
    assert local_model_file("onekuma/sakura-13b-lnovel-v0.9b-q2_k") is None
    assert local_model_file("qwen2.5:7b") is None


def test_a_spawned_server_gets_the_address_and_parallelism() -> None:
    process = OllamaServerProcess("ollama", OllamaAddress.parse(":12345"), parallel=6)
    env = process.environment({"PATH": "/bin", "OLLAMA_HOST": "elsewhere"})
    assert env == {"PATH": "/bin", "OLLAMA_HOST": "127.0.0.1:12345", "OLLAMA_NUM_PARALLEL": "6"}
    assert process.environment({"OLLAMA_NUM_PARALLEL": "2"})["OLLAMA_NUM_PARALLEL"] == "2"


SHOW = {
    "parameters": 'num_ctx                        4096\nstop                           "<|im_end|>"\n'
    'stop                           "<|im_start|>"',
    "details": {"quantization_level": "Q2_K"},
    "model_info": {
        "general.architecture": "qwen2",
        "general.parameter_count": 14_167_290_880,
        "qwen2.context_length": 32768,
        "qwen2.embedding_length": 5120,
        "qwen2.vocab_size": 152064,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": [],
    },
    "tensors": [{"name": "a", "type": "Q4_K", "shape": [256, 2]}, {"name": "b", "type": "F32", "shape": [10]}],
}


def test_model_details_from_show() -> None:
    assert modelfile_parameters(SHOW) == {"num_ctx": ["4096"], "stop": ["<|im_end|>", "<|im_start|>"]}
    assert context_length(None, SHOW, 2048) == 4096
    assert context_length(1000, SHOW, 2048) == 1000
    assert context_length(None, {"model_info": {"general.architecture": "x", "x.context_length": 1024}}, 2048) == 1024
    assert quantization(SHOW) == "Q2_K"
    assert quantization({"details": {"quantization_level": "unknown"}}) is None
    # Q4_K stores 256 values in 144 bytes; F32 four bytes each
    assert llama_server_meta(SHOW) == {
        "vocab_type": 2,
        "n_vocab": 152064,
        "n_ctx_train": 32768,
        "n_embd": 5120,
        "n_params": 14_167_290_880,
        "size": 2 * 144 + 40,
    }
    assert llama_server_meta({"model_info": {}}) is None
    unknown_type = {**SHOW, "tensors": [{"name": "a", "type": "FUTURE", "shape": [1]}]}
    assert "size" not in (llama_server_meta(unknown_type) or {})


def test_progress_in_a_log_prints_lines_not_redraws() -> None:
    out = io.StringIO()
    progress = PullProgress(out, interactive=False)
    progress.update({"status": "pulling manifest"})
    progress.update({"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a0746a1ec1aef", "total": 2_000_000_000})
    for done in (500_000_000, 2_000_000_000):
        progress.update({"digest": "sha256:6a0746a1ec1aef", "total": 2_000_000_000, "completed": done})
    progress.update({"status": "success"})
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[1].startswith("pulling 6a0746a1ec1a:   0% ▕")
    assert lines[2] == "pulling 6a0746a1ec1a: 100% ▕" + "█" * 30 + "▏ 2.0 GB/2.0 GB"
    assert lines[3] == "success"
    assert "\x1b" not in out.getvalue()


def test_progress_on_a_terminal_redraws_one_line_per_layer() -> None:
    out = io.StringIO()
    progress = PullProgress(out, interactive=True)
    progress.update({"status": "pulling manifest"})
    progress.update({"digest": "sha256:aaaaaaaaaaaa11", "total": 100, "completed": 50})
    progress.update({"digest": "sha256:bbbbbbbbbbbb22", "total": 10, "completed": 10})
    progress.finish()
    text = out.getvalue()
    assert "\x1b[2F" in text  # moved up over the lines drawn before
    final = text.rsplit("\x1b[3F", 1)[-1]
    assert final.count("\n") == 3
    assert "pulling aaaaaaaaaaaa:  50% ▕" + "█" * 15 in final and "pulling bbbbbbbbbbbb: 100%" in final


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (512, 12_300, 340_000_000, 1_200_000_000)] == [
        "512 B",
        "12.3 KB",
        "340.0 MB",
        "1.2 GB",
    ]


def test_which_servers_take_files() -> None:
    assert takes_files("0.5.4-ipexllm-20250407") is False
    assert takes_files("0.5.5") is True
    assert takes_files("0.13.5") is True
    assert takes_files("v1.0.0") is True
    assert takes_files("") is None
    assert takes_files("dev") is None


def test_the_real_server_tests_name_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    from sakura_ollama.testing import real_server

    monkeypatch.delenv("SAKURA_TEST_OLLAMA", raising=False)
    monkeypatch.setattr(real_server, "repository_root", lambda: None)
    monkeypatch.setattr(real_server.shutil, "which", lambda name: None)
    with pytest.raises(real_server.MissingTestOllamaError, match=r"run `bash plugins/sakura-ollama/tools/install_te"):
        real_server.find_test_ollama()
    monkeypatch.setenv("SAKURA_TEST_OLLAMA", "/nowhere/ollama")
    with pytest.raises(real_server.MissingTestOllamaError, match="is not an executable file"):
        real_server.find_test_ollama()
