"""Fixtures for sakura-ray's tests: one real Ray cluster on this machine for the whole session, a tiny GGUF, and
one front (RayEngine) with two llama.cpp replicas that most tests share. Ray starts slowly on two cores: keep new
clusters and deployments out of the tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_llamacpp.tiny_model import write_tiny_gguf
from sakura_ray.engine import RayEngine
from sakura_ray.options import RayOptions
from sakura_ray.testing import LocalRayCluster

#: Sequences each replica decodes together.
REPLICA_PARALLEL = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A Ray head started by the tests (4 logical CPUs, loopback addresses, no dashboard, no usage reports, a
    token of its own). This process and the ``sakura`` processes the tests start join it as drivers."""
    cluster = LocalRayCluster.start()
    os.environ.update(cluster.environment)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 GGUF named like a Sakura v1.0 model."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models"))


def llamacpp_engine() -> LlamaCppEngine:
    """The engine each replica runs: 2 sequences of 4096 tokens (room for generations long enough to be cut while
    they run), one thread (two replicas share two cores)."""
    return LlamaCppEngine(LlamaCppOptions(n_parallel=REPLICA_PARALLEL, n_ctx=4096, threads=1))


@pytest.fixture(scope="session")
async def replicas(ray_cluster: LocalRayCluster, tiny_gguf: Path) -> AsyncIterator[RayEngine]:
    """The front's stand-in engine with two llama.cpp replicas of the tiny model on the test cluster."""
    engine = RayEngine(llamacpp_engine(), RayOptions(replicas=2, ray_address=ray_cluster.address))
    await engine.load(str(tiny_gguf))
    yield engine
    await engine.close()
