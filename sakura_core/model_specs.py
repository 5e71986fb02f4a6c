"""The models ``sakura run`` is given: ``--model`` repeated, each ``PATH_OR_TAG`` or ``ALIAS=PATH_OR_TAG``."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path


class ModelSpecError(ValueError):
    """A ``--model`` value or ``--default-model`` that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: where it comes from and the extra name requests may use for it."""

    source: str
    alias: str | None = None
    #: The engine that loads it (``ENGINE:PATH_OR_TAG``); None: the one ``--engine`` chose.
    engine: str | None = None

    @classmethod
    def parse(cls, value: str, engines: Collection[str] = ()) -> ModelSpec:
        """``[ALIAS=][ENGINE:]PATH_OR_TAG``. The part before the first ``=`` is an alias only when it names no
        path (no ``/`` or ``\\``), so ``./a=b.gguf`` stays a path; ``ENGINE:`` only when it is the name of an
        installed engine in ``engines`` (an Ollama tag or a Windows drive keeps its colon)."""
        alias: str | None
        alias, sep, source = value.partition("=")
        if not (sep and alias and source and not any(mark in alias for mark in "/\\")):
            alias, source = None, value
        if not source:
            raise ModelSpecError("--model needs a path or tag")
        engine, colon, rest = source.partition(":")
        if colon and rest and engine in engines:
            return cls(source=rest, alias=alias, engine=engine)
        return cls(source=source, alias=alias)


def parse_model_specs(values: Sequence[str], engines: Collection[str] = ()) -> list[ModelSpec]:
    """Every ``--model`` value, in order (``engines``: the installed engines' names); a name used twice is an
    error."""
    specs = [ModelSpec.parse(value, engines) for value in values]
    aliases = [spec.alias for spec in specs if spec.alias is not None]
    for alias in aliases:
        if aliases.count(alias) > 1:
            raise ModelSpecError(f"the alias {alias!r} is given to two models; give each model its own")
    return specs


def served_name(source: str) -> str:
    """The id a model from ``source`` is served under by default: the file's base name without ``.gguf``."""
    base = source.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return base[: -len(".gguf")] if base.lower().endswith(".gguf") else base


def order_with_default(specs: Sequence[ModelSpec], default: str | None) -> list[ModelSpec]:
    """``specs`` with the default model first: the one ``default`` names (an alias, a ``--model`` value or its
    file's base name), else the first given."""
    ordered = list(specs)
    if not default:
        return ordered
    for index, spec in enumerate(ordered):
        if default in (spec.alias, spec.source, served_name(spec.source)):
            return [ordered[index], *ordered[:index], *ordered[index + 1 :]]
    names = ", ".join(spec.alias or served_name(spec.source) for spec in ordered)
    raise ModelSpecError(f"--default-model {default!r} names none of the models ({names}); use an alias or a --model")


#: A later part of a split GGUF (``name-00002-of-00003.gguf``): the first part loads them all.
_LATER_SPLIT_PART = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)


def models_in_dir(folder: str | Path) -> list[ModelSpec]:
    """The models in ``folder`` (``--models-dir``), by name: each GGUF file (the first part of a split one) and each
    sub-folder holding a model (a ``config.json`` or GGUF files). Projector files (``mmproj``) are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise ModelSpecError(f"--models-dir {folder}: not a folder")
    specs = []
    for path in sorted(root.iterdir(), key=lambda item: item.name.lower()):
        if path.name.startswith(".") or "mmproj" in path.name.lower():
            continue
        if path.is_file() and path.suffix.lower() == ".gguf":
            later = _LATER_SPLIT_PART.search(path.name)
            if later is None or later.group(1) == "00001":
                specs.append(ModelSpec(source=str(path)))
        elif path.is_dir() and ((path / "config.json").is_file() or any(path.glob("*.gguf"))):
            specs.append(ModelSpec(source=str(path)))
    if not specs:
        raise ModelSpecError(f"--models-dir {folder}: no GGUF file or model folder in it")
    return specs
