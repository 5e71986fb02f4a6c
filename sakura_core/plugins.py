"""Plugin discovery and the registry of engines and prompt formats built from the hooks."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from sakura_core import builtin_formats, hookspecs
from sakura_core.engine import Engine
from sakura_core.prompts import PromptFormat

if TYPE_CHECKING:
    from pydantic import BaseModel

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sakura"
#: Comma-separated entry-point names to load; unset loads all, empty loads none.
LOAD_PLUGINS_ENV = "SAKURA_LOAD_PLUGINS"
#: Engines we publish, for the install hint when one is asked for but missing.
KNOWN_ENGINE_DISTRIBUTIONS = {"llamacpp": "sakura-llamacpp", "vllm": "sakura-vllm", "ollama": "sakura-ollama"}
BUILTIN_PLUGINS: tuple[tuple[str, ModuleType], ...] = (("sakura.builtin_formats", builtin_formats),)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    name: str
    distribution: str | None
    error: str


@dataclass(frozen=True)
class RegisteredEngine:
    """An engine class and the plugin (and distribution) that registered it."""

    engine_class: type[Engine]
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class RunOptionGroup:
    """Options a plugin adds to ``sakura run``: a pydantic model shown under a heading."""

    model: type[BaseModel]
    heading: str
    plugin: str


class UnknownEngineError(LookupError):
    """An engine name no installed plugin registers. The message is one line for the CLI."""


@dataclass
class PluginRegistry:
    """The plugin manager for one sakura process, with the engines and prompt formats its plugins register."""

    plugin_manager: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    _distributions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @classmethod
    def create(cls, *, entry_points: bool = True, plugins: Iterable[tuple[str, Any]] = ()) -> PluginRegistry:
        """A registry with the built-in plugins, installed plugins (unless ``entry_points`` is false) and
        ``plugins`` given as ``(name, module_or_object)`` pairs (for tests and embedding)."""
        manager = pluggy.PluginManager("sakura")
        manager.add_hookspecs(hookspecs)
        registry = cls(manager)
        for name, plugin in BUILTIN_PLUGINS:
            manager.register(plugin, name=name)
        if entry_points:
            registry.load_entry_points()
        for name, plugin in plugins:
            registry.register(plugin, name)
        return registry

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin (a module or an object with ``@hookimpl`` methods) in-process."""
        self.plugin_manager.register(plugin, name=name)

    def load_entry_points(self) -> None:
        """Load every plugin of the ``sakura`` entry-point group; record those that fail and go on."""
        wanted = os.environ.get(LOAD_PLUGINS_ENV)
        allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            if self.plugin_manager.has_plugin(entry_point.name):
                continue
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the others down
                logger.debug("plugin %s failed to load", entry_point.name, exc_info=True)
                self.failures.append(PluginFailure(entry_point.name, dist_name, f"{type(exc).__name__}: {exc}"))
                continue
            self.plugin_manager.register(plugin, name=entry_point.name)
            if dist is not None:
                self._distributions[entry_point.name] = (dist_name, dist.version)

    def engines(self) -> dict[str, RegisteredEngine]:
        """Every registered engine by name. A plugin whose hook raises is recorded in ``failures``."""
        found: dict[str, RegisteredEngine] = {}
        for impl in reversed(self.plugin_manager.hook.register_engines.get_hookimpls()):
            dist_name, dist_version = self._distributions.get(impl.plugin_name, (None, None))

            def register(
                engine_class: type[Engine],
                _plugin: str = impl.plugin_name,
                _dist: tuple[str | None, str | None] = (dist_name, dist_version),
            ) -> None:
                found[engine_class.name] = RegisteredEngine(engine_class, _plugin, *_dist)

            self._call_safely(impl, register)
        return found

    def prompt_formats(self) -> dict[str, PromptFormat]:
        """Every registered prompt format by name; later registrations replace earlier ones."""
        found: dict[str, PromptFormat] = {}
        # get_hookimpls() lists plugins in registration order: the later registration of a name wins
        for impl in self.plugin_manager.hook.register_prompt_formats.get_hookimpls():

            def register(prompt_format: PromptFormat) -> None:
                found[prompt_format.name] = prompt_format

            self._call_safely(impl, register)
        return found

    def run_options(self) -> list[RunOptionGroup]:
        """The option groups plugins add to ``sakura run``, in plugin registration order."""
        found: list[RunOptionGroup] = []
        for impl in self.plugin_manager.hook.register_run_options.get_hookimpls():

            def register(model: type[BaseModel], heading: str, _plugin: str = impl.plugin_name) -> None:
                found.append(RunOptionGroup(model, heading, _plugin))

            self._call_safely(impl, register)
        return found

    def engine(self, name: str) -> RegisteredEngine:
        """The engine called ``name``, or UnknownEngineError naming the installed ones and the fix."""
        engines = self.engines()
        if name in engines:
            return engines[name]
        installed = ", ".join(sorted(engines)) or "none"
        dist = KNOWN_ENGINE_DISTRIBUTIONS.get(name)
        if dist is not None:
            hint = f"install it with: pip install {dist}"
        else:
            missing = [d for n, d in sorted(KNOWN_ENGINE_DISTRIBUTIONS.items()) if n not in engines]
            hint = f"engines can be added with: pip install {' | '.join(missing)}" if missing else ""
        message = f"unknown engine {name!r} (installed: {installed})"
        raise UnknownEngineError(f"{message}; {hint}" if hint else message)

    def prompt_format(self, name: str) -> PromptFormat:
        """The prompt format called ``name``; KeyError lists the registered ones."""
        formats = self.prompt_formats()
        if name not in formats:
            raise KeyError(f"unknown prompt format {name!r} (registered: {', '.join(sorted(formats))})")
        return formats[name]

    def _call_safely(self, impl: pluggy.HookImpl, register: Any) -> None:
        try:
            impl.function(register=register)
        except Exception as exc:
            dist_name = self._distributions.get(impl.plugin_name, (None, None))[0]
            failure = PluginFailure(impl.plugin_name, dist_name, f"{type(exc).__name__}: {exc}")
            if failure not in self.failures:
                self.failures.append(failure)
