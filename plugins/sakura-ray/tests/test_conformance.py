"""The core's conformance kit, run against what sakura serves: two llama.cpp replicas behind the Ray stand-in."""

from __future__ import annotations

import pytest
from sakura_ray.engine import RayEngine

from sakura_core.testing.conformance import EngineConformance


class TestRayReplicasConformance(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls, replicas: RayEngine) -> RayEngine:
        return replicas
