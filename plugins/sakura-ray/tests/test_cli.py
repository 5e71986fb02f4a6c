"""``sakura run`` with sakura-ray installed: its options, one-line errors, and no change (no Ray) without them."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sakura_ray.plugin import HEADING
from sakura_ray.testing import LocalRayCluster

from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.ports import free_port

SAKURA = [sys.executable, "-c", "from sakura_core.cli import main; main()"]
MESSAGES = [{"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"}]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAKURA, *args], capture_output=True, text=True, timeout=timeout)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error:")]


def test_run_help_lists_the_replica_options_under_their_heading() -> None:
    result = CliRunner().invoke(cli, ["run", "--engine", "llamacpp", "--help"], obj=CliState(PluginRegistry.create()))
    assert result.exit_code == 0, result.output
    section = result.output.partition(f"{HEADING}:")[2].partition("Engine options:")[0]
    for option in ("--replicas", "--min-replicas", "--max-replicas", "--ray-address", "--replica-cpus"):
        assert option in section, result.output
    assert "--replica-gpus" in section and "--n-gpu-layers" not in section


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "2", "--max-replicas", "3"], "give one or the other"),
        (["--min-replicas", "2"], "--min-replicas needs --max-replicas"),
        (["--min-replicas", "3", "--max-replicas", "2"], "--min-replicas 3 is more than --max-replicas 2"),
        (["--replicas", "0"], "invalid value for --replicas"),
        (["--replica-gpus", "-1"], "invalid value for --replica-gpus"),
    ],
)
def test_contradicting_replica_options_are_one_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--engine", "llamacpp", "--model", "m.gguf", *args], obj=CliState(PluginRegistry.create())
    )
    assert result.exit_code == 2, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert message in error, result.output


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_ray_address_is_one_line_at_start(tiny_gguf: Path, scheme: str) -> None:
    address = f"{scheme}127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    done = run_cli("run", "--model", str(tiny_gguf), "--port", str(free_port()), "--ray-address", address)
    assert time.monotonic() - started < 30, "Ray's own retries would take minutes"
    assert done.returncode == 1
    [error] = error_lines(done)
    assert error.startswith(f"Error: cannot reach the Ray cluster at {address} (") and "ray start --head" in error
    assert "Traceback" not in done.stderr


def test_a_model_the_replicas_cannot_load_is_the_engines_one_line(ray_cluster: LocalRayCluster, tmp_path: Path) -> None:
    missing = tmp_path / "sakura-7b-qwen2.5-v1.0-iq4xs.gguf"
    done = run_cli(
        "run", "--model", str(missing), "--port", str(free_port()), "--replicas", "1",
        "--ray-address", ray_cluster.address,
    )  # fmt: skip
    assert done.returncode == 1
    [error] = error_lines(done)
    assert error.startswith(f"Error: model file not found: {missing}"), error
    assert "Traceback" not in done.stderr


def test_without_replica_options_sakura_runs_as_before_and_imports_no_ray(tiny_gguf: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sakura.log"
    command = [sys.executable, "-X", "importtime", *SAKURA[1:]]
    args = ["run", "--model", str(tiny_gguf), "--listen", f"127.0.0.1:{port}", "-np", "1", "--no-self-check"]
    with log.open("w") as log_file:
        process = subprocess.Popen([*command, *args], stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"sakura exited early:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"sakura did not become healthy:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        reply = httpx.post(url + "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4}, timeout=60)
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 4
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert re.search(r"engine:\s+llamacpp \(1 parallel sequences", output), output[-3000:]
    imported = {line.rpartition("|")[2].strip() for line in output.splitlines() if line.startswith("import time:")}
    assert "sakura_ray.options" in imported  # the plugin was loaded (its options model) ...
    assert not {name for name in imported if name == "ray" or name.startswith("ray.")}  # ... and Ray was not
