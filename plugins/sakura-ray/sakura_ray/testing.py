"""Helpers for tests and benchmarks: a real Ray cluster on this machine, and killing one replica of a front."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sakura_core.testing.ports import free_port

#: A Sakura v1.0 prompt; the tiny test model's greedy continuation of it runs to max_tokens.
TRANSLATION_PROMPT = (
    "<|im_start|>user\n将下面的日文文本翻译成中文：やる気マンゴスキン<|im_end|>\n<|im_start|>assistant\n"
)
#: What the cluster's processes are started with: no usage reports, no stack dumps on SIGTERM.
CLUSTER_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}


@dataclass
class LocalRayCluster:
    """A one-node Ray cluster (``ray start --head --block``) on loopback addresses, without dashboard or usage
    reports, its files in a temporary folder; ``stop()`` ends every process it started.

    It uses Ray's token authentication with a token of its own (nothing is read from or written to ``~/.ray``):
    a process that joins it as a driver needs ``environment`` in its environment.
    """

    address: str
    process: subprocess.Popen[bytes]
    temp_dir: Path
    #: Environment variables of the cluster's processes, which drivers need too (the token among them).
    environment: dict[str, str]

    @classmethod
    def start(cls, num_cpus: int = 4, within: float = 180.0) -> LocalRayCluster:
        """Start the head and wait until it takes connections (Ray starts slowly on two busy cores)."""
        # a short folder: Ray's unix sockets live under it, and socket paths are limited to about 100 bytes
        temp_dir = Path(tempfile.mkdtemp(prefix="sakura-ray-", dir="/tmp" if os.path.isdir("/tmp") else None))
        port = free_port()
        ray = Path(sys.executable).with_name("ray")
        command = [
            str(ray) if ray.exists() else "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-port={free_port()}",
            f"--num-cpus={num_cpus}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ]
        environment = {**CLUSTER_ENVIRONMENT, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        with (temp_dir / "ray-start.log").open("wb") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **environment}, start_new_session=True
            )
        cluster = cls(f"127.0.0.1:{port}", process, temp_dir, environment)
        deadline = time.monotonic() + within
        while b"Ray runtime started" not in (temp_dir / "ray-start.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                output = (temp_dir / "ray-start.log").read_text(errors="replace")
                cluster.stop()
                raise RuntimeError(f"the Ray head did not start:\n{output[-3000:]}")
            time.sleep(0.2)
        return cluster

    def stop(self, within: float = 5.0) -> None:
        """Stop the head and every process it started (all in one process group), and remove its files.

        The whole group gets SIGTERM at once, and what is left after ``within`` seconds is killed: ``ray start
        --block`` stopping its processes one after the other takes half a minute, and a test cluster keeps nothing.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.temp_dir)


def replica_actor(app_name: str, deployment_name: str, replica_id: str) -> Any:
    """The actor of one replica, to kill later without a lookup in between. Needs a connected Ray."""
    import ray

    return ray.get_actor(f"SERVE_REPLICA::{app_name}#{deployment_name}#{replica_id}", namespace="serve")


def kill_actor(actor: Any) -> None:
    """Kill a replica's actor the way a crash would (no graceful shutdown)."""
    import ray

    ray.kill(actor, no_restart=True)


def running_replicas(app_name: str, deployment_name: str) -> int:
    """Replicas Ray Serve reports as running for the deployment."""
    from ray import serve

    application = serve.status().applications.get(app_name)
    if application is None or deployment_name not in application.deployments:
        return 0
    states = application.deployments[deployment_name].replica_states  # keyed by a str enum
    return sum(count for state, count in states.items() if state == "RUNNING")
