"""Loading: identity and meta from the GGUF, GPU layers, and one clear line for every way loading fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.model_source import choose_gguf_files, parse_repository
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.tiny_model import write_tiny_gguf

from sakura_core.engine import ModelLoadError
from sakura_core.plugins import PluginRegistry
from sakura_core.types import ModelInfo


def copy(source: Path, target: Path, *, limit: int | None = None) -> None:
    """Copy a file (its first ``limit`` bytes), creating the target's folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes()[:limit])


async def load_error(model: str, **options: object) -> str:
    engine = LlamaCppEngine(LlamaCppOptions(**{"n_parallel": 1, "n_ctx": 128, **options}))
    with pytest.raises(ModelLoadError) as caught:
        await engine.load(model)
    await engine.close()
    message = str(caught.value)
    assert "\n" not in message
    assert engine.active_generations == 0
    return message


def test_identity_and_true_meta(engine: LlamaCppEngine, tiny_gguf: Path) -> None:
    info = engine.model_info
    assert info is not None
    assert info.id == "sakura-tiny-qwen2-v1.0-f32"
    assert (info.name, info.version, info.quant) == ("sakura-tiny-qwen2", "1.0", "f32")
    assert info.path == str(tiny_gguf)
    assert served_format(info) == "v1.0"
    assert info.context_length == 512
    reader = gguf.GGUFReader(str(tiny_gguf))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert info.meta == {
        "vocab_type": 2,  # BPE
        "n_vocab": len(tokens.data),
        "n_ctx_train": 4096,
        "n_embd": 64,
        "n_params": sum(int(t.n_elements) for t in reader.tensors),
        "size": sum(int(t.n_bytes) for t in reader.tensors),
    }


def test_gpu_layers_follow_what_the_build_supports(engine: LlamaCppEngine) -> None:
    from llama_cpp import llama_cpp as lib

    supported = bool(lib.llama_supports_gpu_offload())
    assert engine.gpu_offload_supported is supported
    assert engine.gpu_layers == (-1 if supported else 0)
    assert engine.parallelism == 4


async def test_identity_from_general_name_and_file_type(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "model.gguf", name="Sakura-7B-Qwen2.5-v1.0", file_type="q8_0")
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128))
    info = await engine.load(str(path))
    await engine.close()
    assert (info.name, info.version, info.quant) == ("Sakura-7B-Qwen2.5", "1.0", "Q8_0")
    assert info.id == "model-v1.0"  # clients find the version in the id


async def test_v15_from_a_general_name_written_with_spaces(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "model.gguf", name="Sakura 14B Qwen3 v1.5")
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128))
    info = await engine.load(str(path))
    await engine.close()
    assert (info.name, info.version, served_format(info), info.id) == ("Sakura 14B Qwen3", "1.5", "v1.5", "model-v1.5")


async def test_model_version_option_wins(tiny_gguf: Path) -> None:
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128))
    info = await engine.load(str(tiny_gguf), model_version="0.9")
    await engine.close()
    assert info.version == "0.9"
    assert served_format(info) == "v0.9"
    assert "0.9" in info.id


async def test_a_directory_with_one_gguf_loads_and_with_two_asks_which(tmp_path: Path, tiny_gguf: Path) -> None:
    folder = tmp_path / "one"
    copy(tiny_gguf, folder / tiny_gguf.name)
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128, n_gpu_layers=0, flash_attn=False, mmap=False))
    info = await engine.load(str(folder))
    await engine.close()
    assert info.id == "sakura-tiny-qwen2-v1.0-f32"
    copy(tiny_gguf, folder / "sakura-tiny-qwen2-v1.0-q2_k.gguf")
    message = await load_error(str(folder))
    assert "which file" in message and "sakura-tiny-qwen2-v1.0-q2_k.gguf" in message
    copy(tiny_gguf, folder / "sakura-tiny-qwen2-v1.0-Q4_K_M.gguf")
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128))
    info = await engine.load(str(folder))  # several files: the preferred quant, as for a repository
    await engine.close()
    assert info.id == "sakura-tiny-qwen2-v1.0-Q4_K_M"


async def test_missing_file(tmp_path: Path) -> None:
    message = await load_error(str(tmp_path / "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"))
    assert message.startswith("model file not found:")
    assert "Hugging Face" in message


async def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"
    path.write_text('{"model_type": "qwen2"}')
    message = await load_error(str(path))
    assert "is not a GGUF file" in message
    assert "--engine vllm" in message


async def test_a_transformers_directory_says_which_engine_serves_it(tmp_path: Path) -> None:
    folder = tmp_path / "Sakura-14B-Qwen3-v1.5"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen3", "sakura_version": "1.5"}')
    message = await load_error(str(folder))
    assert message.startswith(f"no .gguf file in {folder}")
    assert "--engine vllm" in message and "convert_hf_to_gguf.py" in message


async def test_unknown_architecture_says_upgrade_llama_cpp_python(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "sakura-future-v2.0-f32.gguf", architecture="qwen9")
    message = await load_error(str(path))
    assert "unknown model architecture: 'qwen9'" in message
    assert "pip install -U llama-cpp-python" in message
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in message


async def test_truncated_gguf(tmp_path: Path, tiny_gguf: Path) -> None:
    path = tmp_path / "sakura-broken-v1.0-f32.gguf"
    copy(tiny_gguf, path, limit=5000)
    message = await load_error(str(path))
    assert message.startswith("llama.cpp could not load sakura-broken-v1.0-f32.gguf")


# -- Hugging Face repositories ---------------------------------------------------------------------------------


def test_parse_repository() -> None:
    assert parse_repository("SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF") == (
        "SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF",
        None,
    )
    assert parse_repository("SakuraLLM/Sakura-GGUF:Q4_K_M") == ("SakuraLLM/Sakura-GGUF", "Q4_K_M")
    assert parse_repository("SakuraLLM/Sakura-GGUF:a-v1.0-q8_0.gguf") == ("SakuraLLM/Sakura-GGUF", "a-v1.0-q8_0.gguf")
    for path in ("./models/a.gguf", "/abs/a", "models/a.gguf", "~/a", "a.gguf", "a/b/c"):
        assert parse_repository(path) is None


def test_choose_gguf_files() -> None:
    files = [
        "README.md",
        "sakura-1.5b-qwen2.5-v1.0-fp16.gguf",
        "sakura-1.5b-qwen2.5-v1.0-iq4xs.gguf",
        "sakura-1.5b-qwen2.5-v1.0-Q4_K_M.gguf",
        "sakura-1.5b-qwen2.5-v1.0-q4_k_s.gguf",
        "big/sakura-32b-v1.0-Q8_0-00001-of-00002.gguf",
        "big/sakura-32b-v1.0-Q8_0-00002-of-00002.gguf",
    ]
    assert choose_gguf_files(files, None, where="r") == ["sakura-1.5b-qwen2.5-v1.0-Q4_K_M.gguf"]
    assert choose_gguf_files(files, "IQ4_XS", where="r") == ["sakura-1.5b-qwen2.5-v1.0-iq4xs.gguf"]
    assert choose_gguf_files(files, "q4ks", where="r") == ["sakura-1.5b-qwen2.5-v1.0-q4_k_s.gguf"]
    assert choose_gguf_files(files, "sakura-1.5b-qwen2.5-v1.0-fp16.gguf", where="r") == [
        "sakura-1.5b-qwen2.5-v1.0-fp16.gguf"
    ]
    assert choose_gguf_files(files, "Q8_0", where="r") == [
        "big/sakura-32b-v1.0-Q8_0-00001-of-00002.gguf",
        "big/sakura-32b-v1.0-Q8_0-00002-of-00002.gguf",
    ]
    with pytest.raises(ModelLoadError, match="'Q2_K' matches no file in r: choose one with --model r:FILE_OR_QUANT"):
        choose_gguf_files(files, "Q2_K", where="r")
    with pytest.raises(ModelLoadError, match=r"no \.gguf file in r"):
        choose_gguf_files(["README.md"], None, where="r")
    with pytest.raises(ModelLoadError, match="is incomplete"):
        choose_gguf_files(files[:-1], "Q8_0", where="r")


def test_missing_llama_cpp_python_is_one_line_naming_the_fix(tiny_gguf: Path) -> None:
    """In a fresh interpreter where ``import llama_cpp`` fails, loading says how to install it."""
    code = (
        "import asyncio, sys\n"
        "sys.modules['llama_cpp'] = None  # what Python does for a package that is not installed: ImportError\n"
        "from sakura_core.engine import ModelLoadError\n"
        "from sakura_llamacpp.engine import LlamaCppEngine\n"
        "try:\n"
        "    asyncio.run(LlamaCppEngine().load(sys.argv[1]))\n"
        "except ModelLoadError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_gguf)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llama-cpp-python is not installed")
    assert "pip install -U llama-cpp-python" in lines[0] and 'CMAKE_ARGS="-DGGML_CUDA=on"' in lines[0]


async def test_use_gpu_without_gpu_support_warns_how_to_get_it(
    tiny_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from llama_cpp import llama_cpp as lib

    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=1, n_ctx=128, use_gpu=True))
    with caplog.at_level("INFO", logger="sakura_llamacpp"):
        await engine.load(str(tiny_gguf))
    await engine.close()
    if lib.llama_supports_gpu_offload():
        assert engine.gpu_layers == -1
        assert "offloading all layers to the GPU" in caplog.text
    else:
        assert engine.gpu_layers == 0
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("cannot offload to a GPU" in w and "-DGGML_CUDA=on" in w for w in warnings), warnings


def served_format(info: ModelInfo | None) -> str:
    """The prompt format the core serves a model of this identity with (engines report identity only)."""
    assert info is not None
    return PluginRegistry.create(entry_points=False).prompt_format_for(info).name
