"""The vllm engine's options: vLLM engine arguments, the original's aliases, the pass-through, the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sakura_vllm.engine import VllmEngine
from sakura_vllm.options import VllmOptions

from sakura_core import hookimpl
from sakura_core.cli import cli
from sakura_core.cli_options import build_options
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry


def engine_arg_names() -> set[str]:
    from vllm import AsyncEngineArgs

    return {field.name for field in dataclasses.fields(AsyncEngineArgs)}


def test_defaults_leave_vllms_defaults() -> None:
    args = VllmOptions().engine_args("some/model")
    assert args["model"] == "some/model"
    assert args["disable_log_stats"] is True
    assert args["enable_prefix_caching"] is True  # clients repeat their system prompt and glossary
    assert VllmOptions(vllm_arg=["enable_prefix_caching=false"]).engine_args("m")["enable_prefix_caching"] is False
    for unset in ("gpu_memory_utilization", "quantization", "max_model_len", "max_num_seqs", "tokenizer"):
        assert unset not in args


def test_every_named_option_is_a_vllm_engine_argument() -> None:
    options = VllmOptions(
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        distributed_executor_backend="ray",
        gpu_memory_utilization=0.85,
        enforce_eager=True,
        quantization="AWQ",
        max_model_len=4096,
        dtype="float16",
        kv_cache_dtype="fp8",
        trust_remote_code=True,
        max_num_seqs=16,
        tokenizer="tok",
        revision="main",
        download_dir="models",
    )
    args = options.engine_args("m")
    assert args == {
        "model": "m",
        "disable_log_stats": True,
        "enable_prefix_caching": True,
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "distributed_executor_backend": "ray",
        "gpu_memory_utilization": 0.85,
        "enforce_eager": True,
        "quantization": "awq",
        "max_model_len": 4096,
        "dtype": "float16",
        "kv_cache_dtype": "fp8",
        "trust_remote_code": True,
        "max_num_seqs": 16,
        "tokenizer": "tok",
        "revision": "main",
        "download_dir": "models",
    }
    assert set(args) <= engine_arg_names()


@pytest.mark.parametrize(("flags", "method"), [({"use_gptq_model": True}, "gptq"), ({"use_awq_model": True}, "awq")])
def test_the_originals_quantisation_flags(flags: dict[str, bool], method: str) -> None:
    options = VllmOptions(**flags)
    assert options.effective_quantization == method
    assert options.engine_args("m")["quantization"] == method


def test_contradicting_quantisation_options_are_rejected() -> None:
    with pytest.raises(ValidationError, match="choose one quantisation method"):
        VllmOptions(use_gptq_model=True, use_awq_model=True)
    with pytest.raises(ValidationError, match="choose one quantisation method"):
        VllmOptions(use_gptq_model=True, quantization="awq")
    assert VllmOptions(use_gptq_model=True, quantization="gptq").effective_quantization == "gptq"


def test_pass_through_arguments() -> None:
    options = VllmOptions(
        vllm_args='{"seed": 3, "enable-prefix-caching": false}',
        vllm_arg=["max_num_batched_tokens=8192", "--swap-space=4", "served_model_name=sakura", 'hf_overrides={"a": 1}'],
    )
    args = options.engine_args("m")
    assert args["seed"] == 3
    assert args["enable_prefix_caching"] is False
    assert args["max_num_batched_tokens"] == 8192
    assert args["swap_space"] == 4
    assert args["served_model_name"] == "sakura"  # not JSON: kept as text
    assert args["hf_overrides"] == {"a": 1}


def test_a_named_option_wins_over_the_pass_through_only_when_given() -> None:
    assert VllmOptions(vllm_arg=["max_model_len=2048"]).engine_args("m")["max_model_len"] == 2048
    assert VllmOptions(vllm_arg=["enforce_eager=true"]).engine_args("m")["enforce_eager"] is True
    given = VllmOptions(max_model_len=1024, vllm_arg=["max_model_len=2048"])
    assert given.engine_args("m")["max_model_len"] == 1024


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vllm_arg", ["no-equals-sign"], "expected KEY=VALUE"),
        ("vllm_arg", ["=1"], "expected KEY=VALUE"),
        ("vllm_args", "{not json", "not valid JSON"),
        ("vllm_args", "[1, 2]", "expected a JSON object"),
        ("gpu_memory_utilization", 1.5, "less than or equal to 1"),
        ("tensor_parallel_size", 0, "greater than or equal to 1"),
        ("distributed_executor_backend", "slurm", "'mp' or 'ray'"),
    ],
)
def test_bad_values_are_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VllmOptions(**{field: value})


def test_sakura_sets_model_itself() -> None:
    with pytest.raises(ValueError, match="cannot set model"):
        VllmOptions(vllm_arg=["model=other"]).engine_args("m")


class VllmPlugin:
    @hookimpl
    def register_engines(self, register):
        register(VllmEngine)


def parse_run_options(*args: str) -> VllmOptions:
    """The engine options ``sakura run --engine vllm ARGS`` would build, through the real CLI parser."""
    registry = PluginRegistry.create(entry_points=False, plugins=[("vllm-test", VllmPlugin())])
    state = CliState(registry)
    command = cli.commands["run"]
    with command.make_context("run", ["--engine", "vllm", "--model", "m", *args], obj=state) as ctx:
        options = build_options(VllmOptions, ctx, state.engine_options)
    assert isinstance(options, VllmOptions)
    return options


def test_command_line_spellings() -> None:
    options = parse_run_options(
        "-tp", "2", "--pipeline_parallel_size", "2", "--distributed-executor-backend", "ray",
        "--gpu_memory_utilization", "0.8", "--enforce_eager", "--use_gptq_model", "--trust_remote_code",
        "-c", "4096", "-np", "32", "--vllm-arg", "seed=1", "--vllm-arg", "max_num_batched_tokens=512",
    )  # fmt: skip
    assert options.tensor_parallel_size == 2
    assert options.pipeline_parallel_size == 2
    assert options.distributed_executor_backend == "ray"
    assert options.gpu_memory_utilization == 0.8
    assert options.enforce_eager and options.trust_remote_code
    assert options.effective_quantization == "gptq"
    assert (options.max_model_len, options.max_num_seqs) == (4096, 32)
    assert options.vllm_arg == ["seed=1", "max_num_batched_tokens=512"]
    assert parse_run_options("--trust-remote-code").trust_remote_code is True
    assert parse_run_options().trust_remote_code is False


def test_run_help_lists_the_engine_options() -> None:
    registry = PluginRegistry.create(entry_points=False, plugins=[("vllm-test", VllmPlugin())])
    result = CliRunner().invoke(cli, ["run", "--engine", "vllm", "--help"], obj=CliState(registry))
    assert result.exit_code == 0, result.output
    engine_section = result.output.split("Engine options: vllm", 1)[1]
    for flag in (
        "--tensor-parallel-size", "--pipeline-parallel-size", "--distributed-executor-backend",
        "--gpu-memory-utilization", "--enforce-eager", "--quantization", "--use-gptq-model", "--use-awq-model",
        "--max-model-len", "--dtype", "--kv-cache-dtype", "--trust-remote-code", "--max-num-seqs", "--vllm-arg",
        "--vllm-args",
    ):  # fmt: skip
        assert flag in engine_section, flag


def test_plugin_import_is_cheap_and_imports_no_engine_library() -> None:
    """Loading the plugin (which every ``sakura`` command does) imports its own modules and the standard library
    only: no vllm, torch or transformers, nor any other installed package, whatever the machine's load."""
    # the core (which loads plugins) is imported first: what is measured is this plugin's own imports
    code = (
        "import json, sys; import sakura_core.plugins, sakura_core.identity; "
        "before = set(sys.modules); import sakura_vllm.plugin; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    imported = set(json.loads(output))
    assert "sakura_vllm" in imported
    assert imported - {"sakura_vllm"} <= set(sys.stdlib_module_names), sorted(imported - set(sys.stdlib_module_names))


def test_sakura_help_imports_no_engine_library() -> None:
    code = (
        "import sys\nfrom sakura_core.cli import main\nsys.argv = ['sakura', 'run', '--engine', 'vllm', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('vllm', 'torch', 'transformers') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--tensor-parallel-size" in result.stdout
    assert "HEAVY []" in result.stdout
