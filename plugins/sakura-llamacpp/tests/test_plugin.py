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


def test_llama_server_spellings_of_the_cache_placement_and_rope_options() -> None:
    options = parse(
        *("-ctk", "q8_0", "-ctv", "q4_0", "-ub", "128", "-tb", "3", "-nkvo", "--no-cache-prompt", "-sps", "0.5"),
        *("-sm", "row", "-ts", "3,1", "-mg", "1", "--mlock", "--numa", "distribute", "--no-repack"),
        *("--no-op-offload", "--rope-scaling", "yarn", "--rope-scale", "4", "--rope-freq-base", "1e6"),
        *("--rope-freq-scale", "0.25", "--yarn-orig-ctx", "8192", "--yarn-ext-factor", "0.5", "-dt", "0.1"),
    )
    assert (options.cache_type_k, options.cache_type_v) == ("q8_0", "q4_0")
    assert (options.n_ubatch, options.threads_batch) == (128, 3)
    assert (options.kv_offload, options.cache_prompt, options.slot_prompt_similarity) == (False, False, 0.5)
    assert (options.split_mode, options.tensor_shares(), options.main_gpu) == ("row", [3.0, 1.0], 1)
    assert (options.mlock, options.numa, options.repack, options.op_offload) == (True, "distribute", False, False)
    assert (options.rope_scaling, options.rope_scale, options.rope_freq_base) == ("yarn", 4.0, 1e6)
    assert (options.rope_freq_scale, options.yarn_orig_ctx, options.yarn_ext_factor) == (0.25, 8192, 0.5)
    assert options.defrag_thold == 0.1
    assert parse("--cache-type-k", "f32", "--cache-prompt", "-kvo").cache_type_k == "f32"
    assert parse("--tensor-split", "1/1/2").tensor_shares() == [1.0, 1.0, 2.0]
    defaults = parse()
    assert (defaults.cache_type_k, defaults.cache_type_v, defaults.cache_prompt, defaults.kv_offload) == (
        "f16",
        "f16",
        True,
        True,
    )


def test_bad_option_values_name_the_option() -> None:
    for args, flag in (
        (("-ctk", "q3_k"), "--cache-type-k"),
        (("-ts", "3,x"), "--tensor-split"),
        (("-ts", "0,0"), "--tensor-split"),
        (("-sm", "diagonal"), "--split-mode"),
        (("-sps", "2"), "--slot-prompt-similarity"),
    ):
        try:
            parse(*args)
        except click.UsageError as error:
            message = error.format_message()
            assert flag in message or args[0] in message, (args, message)
        else:
            raise AssertionError(f"{args} was accepted")
