"""The plugin's parts that need no cluster: options, hosting decision, room check, autoscaling policy, errors."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions
from sakura_ray import plugin
from sakura_ray.autoscaling import slot_policy
from sakura_ray.cluster import in_daemon_thread, probe, replicas_that_fit
from sakura_ray.deployment import AUTOSCALING_POLICY, scaling_options
from sakura_ray.engine import RayEngine, _engine_error
from sakura_ray.options import RayOptions
from sakura_ray.replica import SLOTS_METRIC

from sakura_core.engine import EngineError, EngineUnavailableError, ModelLoadError
from sakura_core.testing.ports import free_port


def test_no_option_given_leaves_the_engine_in_process() -> None:
    engine = LlamaCppEngine()
    assert not RayOptions().wanted
    assert plugin.host_engine(engine=engine, run_options={RayOptions: RayOptions()}) is None
    assert plugin.host_engine(engine=engine, run_options={}) is None


@pytest.mark.parametrize(
    "given", [{"replicas": 1}, {"ray_address": "auto"}, {"replica_gpus": 0.5}, {"max_replicas": 3}]
)
def test_any_option_hosts_the_engine_on_ray(given: dict[str, object]) -> None:
    engine = LlamaCppEngine(LlamaCppOptions(n_parallel=3))
    options = RayOptions.model_validate(given)
    stand_in = plugin.host_engine(engine=engine, run_options={RayOptions: options})
    assert isinstance(stand_in, RayEngine)
    assert stand_in.engine_class is LlamaCppEngine and stand_in.engine_options.n_parallel == 3  # type: ignore[attr-defined]
    assert stand_in.model_info is None and stand_in.active_generations == 0


def test_replica_counts_and_scaling() -> None:
    fixed = RayOptions(replicas=3)
    assert (fixed.first_replicas, fixed.most_replicas, fixed.autoscaling) == (3, 3, False)
    assert scaling_options(fixed) == {"num_replicas": 3}
    scaled = RayOptions(min_replicas=2, max_replicas=5)
    assert (scaled.first_replicas, scaled.most_replicas, scaled.autoscaling) == (2, 5, True)
    config = scaling_options(scaled)["autoscaling_config"]
    assert (config["min_replicas"], config["initial_replicas"], config["max_replicas"]) == (2, 2, 5)
    assert config["policy"] == {"policy_function": AUTOSCALING_POLICY}
    assert RayOptions(max_replicas=4).first_replicas == 1
    assert (RayOptions().cpus, RayOptions().gpus) == (1.0, 0.0)


def test_the_room_check_counts_whole_replicas_per_live_node() -> None:
    nodes = [
        {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}},
        {"Alive": True, "Resources": {"CPU": 4.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    assert replicas_that_fit(nodes, cpus=1, gpus=0) == 20
    assert replicas_that_fit(nodes, cpus=4, gpus=1) == 2
    assert replicas_that_fit(nodes, cpus=1, gpus=0.5) == 4
    assert replicas_that_fit(nodes, cpus=3, gpus=0) == 6


def test_the_autoscaling_policy_counts_requests_in_replica_slots() -> None:
    def context(requests: float, slots: dict[str, float] | None, replicas: int = 2) -> SimpleNamespace:
        metrics = None if slots is None else {SLOTS_METRIC: slots}
        return SimpleNamespace(
            aggregated_metrics=metrics, current_num_replicas=replicas, target_num_replicas=replicas,
            total_num_requests=requests,
        )  # fmt: skip

    assert slot_policy(context(12, {"a": 4.0, "b": 4.0})) == (3.0, {})  # 12 requests fill 3 replicas of 4 slots
    assert slot_policy(context(2, {"a": 4.0, "b": 4.0}))[0] == 0.5  # Serve rounds up and keeps min_replicas
    assert slot_policy(context(12, None)) == (2.0, {})  # no replica reported yet: no change
    assert slot_policy(context(12, {"a": 4.0}, replicas=0)) == (0.0, {})


def test_errors_from_a_replicas_engine_keep_their_message_and_temporariness() -> None:
    class BackendRestarting(EngineUnavailableError):
        pass

    wrapped = SimpleNamespace(cause=BackendRestarting("the backend restarts\n  (details)"))
    error = _engine_error(wrapped)  # type: ignore[arg-type]
    assert isinstance(error, EngineUnavailableError)
    assert str(error) == "the backend restarts"
    plain = _engine_error(EngineError("the prompt is too long"))
    assert type(plain) is EngineError and str(plain) == "the prompt is too long"


def test_an_address_nothing_listens_on_is_refused_in_seconds() -> None:
    for address in (f"127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}", "127.0.0.1:notaport"):
        started = time.monotonic()
        with pytest.raises(ModelLoadError, match=r"cannot reach the Ray cluster at .*ray start --head"):
            probe(address)
        assert time.monotonic() - started < 10
    probe("auto")  # Ray finds these itself
    probe("local")


async def test_a_blocking_call_gives_up_after_its_time_without_holding_the_loop() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await in_daemon_thread(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 2
    assert await in_daemon_thread(lambda: 42, None) == 42
    with pytest.raises(ZeroDivisionError):
        await in_daemon_thread(lambda: 1 / 0, 1)
    await asyncio.sleep(0)


def test_the_front_is_healthy_while_one_replica_serves() -> None:
    from sakura_ray.engine import replicas_health

    assert replicas_health([None, "engine down"]) is None
    assert replicas_health([]) == "no Ray replica answers"
    assert replicas_health(["b down", "a down", "a down"]) == "no Ray replica can serve: a down; b down"


async def test_the_front_asks_every_replica_for_its_health(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RayEngine(LlamaCppEngine(), RayOptions(replicas=2))
    assert await engine.health() == "the Ray replicas are not running"
    engine._handle = SimpleNamespace()  # type: ignore[assignment]
    asked: list[str] = []

    async def broadcast(method: str) -> list[str | None]:
        asked.append(method)
        return ["wedged", None]

    monkeypatch.setattr(engine, "_broadcast", broadcast)
    assert await engine.health() is None and asked == ["health"]

    async def unreachable(method: str) -> list[str | None]:
        raise RuntimeError("the cluster is gone\nmore")

    monkeypatch.setattr(engine, "_broadcast", unreachable)
    assert await engine.health() == "the Ray replicas cannot be reached: the cluster is gone"
