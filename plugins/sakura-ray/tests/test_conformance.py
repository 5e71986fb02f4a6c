"""The core's conformance kit, run against what sakura serves: two llama.cpp replicas behind the Ray stand-in."""

from __future__ import annotations

import pytest
from sakura_ray.engine import RayEngine

from sakura_core.testing.conformance import EngineConformance


class TestRayReplicasConformance(EngineConformance):
    #: the tiny model's weights are random: its output holds bytes that are no UTF-8, which the engine must replace
    conformance_allow_replacement_character = True

    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls, replicas: RayEngine) -> RayEngine:
        return replicas
