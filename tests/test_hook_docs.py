"""Every hook is documented once: a one-line docstring in sakura_core/hookspecs.py, a section in docs/plugins.md."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sakura_core import hookspecs

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
#: A hook's heading in the guide: ### `name(parameter, parameter)`
HOOK_HEADING = re.compile(r"^### `(?P<name>\w+)\((?P<parameters>[^)]*)\)`$", re.MULTILINE)


def hook_specs() -> dict[str, Callable[..., Any]]:
    """The hook specifications, by name: the functions pluggy's ``hookspec`` marked."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {name: function for name, function in vars(hookspecs).items() if hasattr(function, marker)}


def hooks_section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("\n## The hooks\n")
    return text[start : text.index("\n## ", start + 1)]


def documented_hooks() -> dict[str, list[str]]:
    """Each hook heading of the guide's hooks section: the hook's name and the parameters it shows."""
    found: dict[str, list[str]] = {}
    for match in HOOK_HEADING.finditer(hooks_section()):
        assert match["name"] not in found, f"docs/plugins.md has two sections for {match['name']}"
        found[match["name"]] = [p.strip() for p in match["parameters"].split(",") if p.strip()]
    return found


def test_the_hooks_are_found() -> None:
    # guards the two parsers below: a change of pluggy's marker or of the headings' shape must not pass silently
    assert {"register_engines", "host_engine", "after_generate"} <= set(hook_specs())
    assert {"register_engines", "host_engine", "after_generate"} <= set(documented_hooks())


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_has_a_section_with_its_parameters(name: str) -> None:
    documented = documented_hooks()
    assert name in documented, f"the hook {name} has no section '### `{name}(...)`' in docs/plugins.md"
    parameters = list(inspect.signature(hook_specs()[name]).parameters)
    assert documented[name] == parameters, f"docs/plugins.md shows {name}({', '.join(documented[name])})"


def test_every_section_documents_a_hook() -> None:
    assert set(documented_hooks()) <= set(hook_specs()), "docs/plugins.md documents hooks that do not exist"


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_docstring_is_one_line(name: str) -> None:
    """The rules live in the guide; a docstring that grows prose again would drift from it."""
    docstring = inspect.getdoc(hook_specs()[name]) or ""
    assert docstring and "\n" not in docstring, f"{name}'s docstring must be one line, got {docstring!r}"
