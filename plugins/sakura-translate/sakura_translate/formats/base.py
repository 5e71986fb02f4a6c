"""What every input format provides: the texts to translate, in reading order, and the translated file."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sakura_translate.glossary import Glossary

#: Per group, per segment: the translation (None only for a segment no chunk covered).
Translations = list[list[str | None]]
Convert = Callable[[str], str]

#: Spaces that indent a line of Japanese or Chinese prose (the ideographic space among them).
INDENT_CHARS = " \t\u3000"


@dataclass(frozen=True)
class LoadOptions:
    """How to read an input file."""

    encoding: str | None = None
    titles: bool = False
    glossary: Glossary = field(default_factory=Glossary)


class Document(abc.ABC):
    """A parsed input file.

    ``groups`` holds the texts to translate, each one line without line breaks, in reading order. Chunks and the
    previous-chunk context never cross from one group to the next (an epub's titles are a group of their own).
    """

    #: What the report calls this kind of file.
    kind: ClassVar[str]

    def __init__(self, path: Path, groups: list[list[str]], encoding: str | None = None) -> None:
        self.path = path
        self.groups = groups
        self.encoding = encoding

    @abc.abstractmethod
    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        """The translated file's bytes. ``translations`` matches ``groups``; ``bilingual`` keeps each source line
        before its translation; ``convert`` is applied to every piece of Chinese written (Traditional Chinese)."""

    def kept_names(self) -> list[str]:
        """Names the translation keeps as they are (a script's speakers without a glossary entry): the kana check
        does not count them."""
        return []

    def notes(self) -> list[str]:
        """Lines for the report about this file (things the user may want to fix)."""
        return []


def merged_text(translation: str | None) -> str:
    """A translation as text ("" for a segment whose chunk's translation went to a later segment)."""
    return translation if translation is not None else ""
