"""The plugin: registration through the entry point, lazy imports, command-line options."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import click
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions

from sakura_core.cli_options import build_options, click_options_for
from sakura_core.plugins import PluginRegistry

HEAVY_MODULES = ("llama_cpp", "gguf", "numpy", "huggingface_hub", "tokenizers", "aiohttp")


def test_entry_point_registers_the_engine() -> None:
    registry = PluginRegistry.create()
    registered = registry.engine("llamacpp")
    assert registered.engine_class is LlamaCppEngine
    assert registered.distribution == "sakura-llamacpp"
    assert registered.plugin == "llamacpp"


def test_cli_help_imports_no_engine_library() -> None:
    code = (
        "import json, sys\n"
        "from sakura_core.cli import main\n"
        "sys.argv = ['sakura', 'run', '--engine', 'llamacpp', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_MODULES!r}))\n"
        "print(json.dumps(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "--n-gpu-layers" in done.stdout and "-np" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def parse(*args: str) -> LlamaCppOptions:
    options = click_options_for(LlamaCppOptions)
    parsed: dict[str, Any] = {}

    @click.command(params=[o.option for o in options])
    @click.pass_context
    def command(ctx: click.Context, **_: Any) -> None:
        parsed["options"] = build_options(LlamaCppOptions, ctx, options)

    command.main(list(args), standalone_mode=False)
    result = parsed["options"]
    assert isinstance(result, LlamaCppOptions)
    return result


def test_options_take_llama_server_and_original_spellings() -> None:
    assert parse() == LlamaCppOptions()
    options = parse("-np", "3", "-ngl", "10", "-c", "1024", "-fa", "--no-mmap", "-t", "2", "-b", "256")
    assert (options.n_parallel, options.n_gpu_layers, options.n_ctx) == (3, 10, 1024)
    assert (options.flash_attn, options.mmap, options.threads, options.n_batch) == (True, False, 2, 256)
    original = parse("--n_gpu_layers", "35", "--use_gpu", "--n_ctx", "4096")
    assert (original.n_gpu_layers, original.use_gpu, original.n_ctx) == (35, True, 4096)
    assert parse("--no-flash-attn").flash_attn is False
    assert parse("--parallel", "16").n_parallel == 16


def test_parallelism_before_load_is_the_cpu_default_or_the_option() -> None:
    assert LlamaCppEngine().parallelism == 4
    assert LlamaCppEngine(LlamaCppOptions(n_parallel=2)).parallelism == 2
