"""What the Engine base class no longer declares still works where a plugin declares it itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from sakura_echo.scripted import ReferenceEngine

from sakura_core import hookimpl
from sakura_core.engine import Engine
from sakura_core.plugins import PluginRegistry
from sakura_core.testing.checks import check_engine_basics, run_generation
from sakura_core.types import SamplingParams


class StillSetsInstallHint(ReferenceEngine):
    """Written against an earlier edition of the guide: it sets install_hint and uses it in its messages."""

    name: ClassVar[str] = "still-sets-install-hint"
    install_hint: ClassVar[str] = "pip install sakura-old-style"


class OldStylePlugin:
    @hookimpl
    def register_engines(self, register: Callable[[type[Engine]], None]) -> None:
        register(StillSetsInstallHint)


def test_the_base_class_declares_no_install_hint() -> None:
    # sakura never read it; the pip commands it shows for missing engines live in sakura_core.plugins
    assert not hasattr(Engine, "install_hint")


async def test_an_engine_that_still_sets_install_hint_registers_and_serves() -> None:
    registry = PluginRegistry.create(entry_points=False, plugins=[("old-style", OldStylePlugin())])
    assert registry.engine("still-sets-install-hint").engine_class is StillSetsInstallHint
    assert not registry.failures
    engine = StillSetsInstallHint()
    await engine.load("sakura-7b-qwen2.5-v1.0-iq4xs.gguf")
    await check_engine_basics(engine)
    run = await run_generation(engine, "第一行\nあいう", SamplingParams(max_tokens=3, do_sample=False))
    assert run.text == "あいう" and run.finish_reason == "length"
    assert engine.install_hint == "pip install sakura-old-style"
    await engine.close()
