"""Plugin discovery and the registry of engines and prompt formats built from the hooks."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from sakura_core import builtin_formats, hookspecs

if TYPE_CHECKING:  # imported lazily: `sakura --help` loads this module and must stay fast
    from pydantic import BaseModel

    from sakura_core.engine import Engine
    from sakura_core.prompts import PromptFormat
    from sakura_core.server.extension import ServerExtension
    from sakura_core.types import ModelInfo

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sakura"
#: Comma-separated entry-point names to load; unset loads all, empty loads none.
LOAD_PLUGINS_ENV = "SAKURA_LOAD_PLUGINS"
#: Where the install hint sends the user: our engines are not on PyPI, pip installs them from a checkout.
CHECKOUT = "in a sakura checkout"
#: Engines we publish, for the install hint when one is asked for but missing: the command, run in a checkout's
#: root, that installs each.
KNOWN_ENGINE_INSTALLS = {
    "llamacpp": "pip install ./plugins/sakura-llamacpp",
    "vllm": "pip install './plugins/sakura-vllm[gpu]'",
    "ollama": "pip install ./plugins/sakura-ollama",
}
BUILTIN_PLUGINS: tuple[tuple[str, ModuleType], ...] = (("sakura.builtin_formats", builtin_formats),)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, whose hook raised, or that registered an engine sakura cannot use."""

    name: str
    distribution: str | None
    error: str
    #: The engine the failure is about, when it is about one.
    engine: str | None = None

    def describe(self) -> str:
        """One line: ``plugin NAME (DISTRIBUTION): ERROR``."""
        source = f" ({self.distribution})" if self.distribution else ""
        return f"plugin {self.name}{source}: {self.error}"


#: Checks an engine class beyond the contract's own rules; returns what is wrong, or None.
EngineCheck = Callable[[type["Engine"]], "str | None"]


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
    #: Installed plugins (entry-point names) that ``SAKURA_LOAD_PLUGINS`` left out.
    left_out: list[str] = field(default_factory=list)
    _distributions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    _formats: tuple[tuple[Any, ...], dict[str, PromptFormat]] | None = None

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
                self.left_out.append(entry_point.name)
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

    def engines(self, check: EngineCheck | None = None) -> dict[str, RegisteredEngine]:
        """Every usable registered engine by name.

        A plugin whose hook raises, or that registers a class that is no complete engine (not an ``Engine``
        subclass, no ``name``, abstract methods left, an ``Options`` that is no ``EngineOptions``) or that
        ``check`` finds fault with, is recorded in ``failures`` with one line, and its engine left out.
        """
        found: dict[str, RegisteredEngine] = {}
        for impl in reversed(self.plugin_manager.hook.register_engines.get_hookimpls()):
            dist_name, dist_version = self._distributions.get(impl.plugin_name, (None, None))

            def register(
                engine_class: type[Engine],
                _plugin: str = impl.plugin_name,
                _dist: tuple[str | None, str | None] = (dist_name, dist_version),
            ) -> None:
                problem = engine_class_problem(engine_class) or (check(engine_class) if check else None)
                if problem is not None:
                    name = getattr(engine_class, "name", None)
                    self._record(PluginFailure(_plugin, _dist[0], problem, name if isinstance(name, str) else None))
                    return
                found[engine_class.name] = RegisteredEngine(engine_class, _plugin, *_dist)

            self._call_safely(impl, register)
        return found

    def prompt_formats(self) -> dict[str, PromptFormat]:
        """Every registered prompt format by name; later registrations replace earlier ones.

        Cheap to call per request: the hooks run again only when the plugins implementing them changed.
        """
        # get_hookimpls() lists plugins in registration order: the later registration of a name wins
        impls = self.plugin_manager.hook.register_prompt_formats.get_hookimpls()
        key = tuple((impl.plugin_name, impl.function) for impl in impls)
        if self._formats is None or self._formats[0] != key:
            found: dict[str, PromptFormat] = {}
            for impl in impls:

                def register(prompt_format: PromptFormat) -> None:
                    found[prompt_format.name] = prompt_format

                self._call_safely(impl, register)
            self._formats = (key, found)
        return dict(self._formats[1])

    def run_options(self) -> list[RunOptionGroup]:
        """The option groups plugins add to ``sakura run``, in plugin registration order."""
        found: list[RunOptionGroup] = []
        for impl in self.plugin_manager.hook.register_run_options.get_hookimpls():

            def register(model: type[BaseModel], heading: str, _plugin: str = impl.plugin_name) -> None:
                found.append(RunOptionGroup(model, heading, _plugin))

            self._call_safely(impl, register)
        return found

    def server_extensions(self, run_options: Mapping[type[BaseModel], BaseModel]) -> list[ServerExtension]:
        """What plugins add to the server (``register_server_extensions``), in plugin registration order. A plugin
        whose hook raises is left out and recorded in ``failures``, like any other hook."""
        found: list[ServerExtension] = []
        for impl in self.plugin_manager.hook.register_server_extensions.get_hookimpls():
            try:
                impl.function(register=found.append, run_options=run_options)
            except Exception as exc:
                logger.warning(
                    "plugin %s could not extend the server: %s: %s", impl.plugin_name, type(exc).__name__, exc
                )
                logger.debug("plugin %s's register_server_extensions raised", impl.plugin_name, exc_info=True)
                dist_name = self._distributions.get(impl.plugin_name, (None, None))[0]
                self._record(PluginFailure(impl.plugin_name, dist_name, f"{type(exc).__name__}: {exc}"))
        return found

    def engine(self, name: str, check: EngineCheck | None = None) -> RegisteredEngine:
        """The engine called ``name``, or UnknownEngineError naming the installed ones and the fix (or the failure
        of the plugin that should have provided it)."""
        engines = self.engines(check)
        if name in engines:
            return engines[name]
        for failure in self.failures:
            if name in (failure.engine, failure.name):
                raise UnknownEngineError(f"the {name} engine cannot be used: {failure.describe()}")
        installed = ", ".join(sorted(engines)) or "none"
        install = KNOWN_ENGINE_INSTALLS.get(name)
        if install is not None:
            hint = f"install it {CHECKOUT}: {install}"
        else:
            missing = [command for n, command in sorted(KNOWN_ENGINE_INSTALLS.items()) if n not in engines]
            hint = f"engines can be added {CHECKOUT}: {'; '.join(missing)}" if missing else ""
        message = f"unknown engine {name!r} (installed: {installed})"
        raise UnknownEngineError(f"{message}; {hint}" if hint else message)

    def prompt_format_for(self, model: ModelInfo) -> PromptFormat:
        """The format ``model`` is served with: the one its engine named, else the last registered format that
        matches its identity, else v1.0's (see ``sakura_core.format_choice``)."""
        from sakura_core.format_choice import choose

        return choose(self.prompt_formats().values(), model)

    def check_model_version(self, version: str | None) -> None:
        """Raise ``UnknownModelVersionError`` (one line naming the known versions) when no registered format
        claims a ``--model-version``."""
        from sakura_core.format_choice import check_model_version

        check_model_version(self.prompt_formats().values(), version)

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
            logger.debug("plugin %s's %s hook raised", impl.plugin_name, impl.function.__name__, exc_info=True)
            dist_name = self._distributions.get(impl.plugin_name, (None, None))[0]
            self._record(PluginFailure(impl.plugin_name, dist_name, f"{type(exc).__name__}: {exc}"))

    def _record(self, failure: PluginFailure) -> None:
        if failure not in self.failures:
            self.failures.append(failure)


def engine_class_problem(engine_class: Any) -> str | None:
    """What makes ``engine_class`` unusable as an engine, in one line, or None."""
    from sakura_core.engine import Engine, EngineOptions

    if not (isinstance(engine_class, type) and issubclass(engine_class, Engine)):
        return f"registered {engine_class!r}, which is not a subclass of sakura_core.Engine"
    label = engine_class.__qualname__
    name = getattr(engine_class, "name", None)
    if not isinstance(name, str) or not name:
        return f"engine class {label} has no name (set the class attribute name = 'myengine')"
    if inspect.isabstract(engine_class):
        missing = ", ".join(sorted(engine_class.__abstractmethods__))
        return f"engine class {label} ({name!r}) does not implement {missing}"
    options = getattr(engine_class, "Options", None)
    if not (isinstance(options, type) and issubclass(options, EngineOptions)):
        return f"engine class {label} ({name!r}): Options must be a subclass of sakura_core.EngineOptions"
    return None
