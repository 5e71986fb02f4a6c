"""Turn an engine's pydantic Options model into click options, and click's values back into the model."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

#: Prefix of the click parameter names that carry engine options, so they never clash with the core's.
ENGINE_PARAM_PREFIX = "engine__"
#: Prefix of the click parameter names that carry options plugins add to ``sakura run`` (``plugin<n>__field``).
PLUGIN_PARAM_PREFIX = "plugin"


@dataclass(frozen=True)
class EngineOption:
    """One engine option: the click option and the model field it fills."""

    option: click.Option
    field_name: str


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _flag_spellings(field_name: str, info: FieldInfo) -> tuple[str, list[str]]:
    dashed = "--" + field_name.replace("_", "-")
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, Mapping) else {}
    aliases = [str(a) for a in extra.get("aliases", [])]  # type: ignore[union-attr]
    underscored = "--" + field_name
    spellings = [underscored] if underscored != dashed else []
    return dashed, spellings + [a for a in aliases if a not in (dashed, underscored)]


def click_options_for(
    model: type[BaseModel],
    taken: set[str] = frozenset(),  # type: ignore[assignment]
    prefix: str = ENGINE_PARAM_PREFIX,
) -> list[EngineOption]:
    """Click options for every field of ``model``, their parameter names prefixed with ``prefix``. Spellings
    already in ``taken`` are left out."""
    result = []
    for field_name, info in model.model_fields.items():
        annotation, _ = _unwrap_optional(info.annotation)
        dashed, extra_spellings = _flag_spellings(field_name, info)
        extra_spellings = [s for s in extra_spellings if s not in taken]
        if dashed in taken:
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        help_text = info.description or ""
        param_name = prefix + field_name
        if annotation is bool:
            negative = "--no-" + field_name.replace("_", "-")
            decls = [param_name, f"{dashed}/{negative}"]
            decls += [f"{s}/--no_{s[2:]}" if s.startswith("--") and "_" in s else s for s in extra_spellings]
            option = click.Option(decls, default=default, show_default=True, help=help_text)
        else:
            kwargs: dict[str, Any] = {}
            origin = typing.get_origin(annotation)
            if origin is Literal:
                kwargs["type"] = click.Choice([str(a) for a in typing.get_args(annotation)])
            elif origin in (list, tuple):
                (item,) = typing.get_args(annotation)[:1] or (str,)
                kwargs["type"] = item if item in (int, float, str) else str
                kwargs["multiple"] = True
                default = tuple(default or ())
            elif annotation in (int, float, str):
                kwargs["type"] = annotation
            else:
                kwargs["type"] = str
            option = click.Option(
                [param_name, dashed, *extra_spellings],
                default=default,
                show_default=default is not None and default != (),
                help=help_text,
                required=info.is_required(),
                **kwargs,
            )
        result.append(EngineOption(option, field_name))
    return result


class OptionsError(click.UsageError):
    """Engine option values the engine's Options model rejects."""


def build_options(model: type[BaseModel], ctx: click.Context, options: list[EngineOption]) -> BaseModel:
    """Validate the engine options the user gave on the command line into ``model``."""
    values: dict[str, Any] = {}
    for engine_option in options:
        name = engine_option.option.name
        assert name is not None
        source = ctx.get_parameter_source(name)
        if source is not None and source is not click.core.ParameterSource.DEFAULT:
            values[engine_option.field_name] = ctx.params[name]
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a model validator's error: its message names the options
            raise OptionsError(str(error["msg"]).removeprefix("Value error, ")) from None
        flag = "--" + str(error["loc"][0]).replace("_", "-")
        raise OptionsError(f"invalid value for {flag}: {error['msg']}") from None


def spellings(param: click.Parameter) -> set[str]:
    """Every spelling of a click option: ``--x``, ``-x`` and a flag's ``--no-x``."""
    return {*param.opts, *getattr(param, "secondary_opts", [])}
