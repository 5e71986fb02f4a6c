"""JSON edited in place: where each string value lies in the file, so a translation replaces only those strings.

Indentation, key order, escapes (``\\u3042``) and line ends of everything not translated stay byte for byte, which
a ``json.dumps`` of the parsed value would not keep.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]  # public since Python 2.6, not in typeshed
from typing import Any

#: A path into a JSON value: object keys and list indexes from the root.
JsonPath = tuple[str | int, ...]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


@dataclass(frozen=True)
class Span:
    """Where a string value lies in the text, quotes included."""

    start: int
    end: int


class JsonText:
    """A JSON text, its parsed value (``json.loads``) and the span of every string value by path."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.value: Any = json.loads(text)  # the errors users see come from json's own messages
        self.spans: dict[JsonPath, Span] = {}
        #: Where each number, true, false or null lies (a null may be replaced by a string).
        self.literals: dict[JsonPath, Span] = {}
        end = self._value(_WHITESPACE.match(text, 0).end(), ())  # type: ignore[union-attr]
        del end

    def _skip(self, index: int) -> int:
        return _WHITESPACE.match(self.text, index).end()  # type: ignore[union-attr]

    def _value(self, index: int, path: JsonPath) -> int:
        char = self.text[index]
        if char == '"':
            _, end = scanstring(self.text, index + 1)
            self.spans[path] = Span(index, end)
            return end
        if char == "{":
            index = self._skip(index + 1)
            if self.text[index] == "}":
                return index + 1
            while True:
                key, index = scanstring(self.text, index + 1)
                index = self._skip(self._skip(index) + 1)  # past the colon
                index = self._skip(self._value(index, (*path, key)))
                if self.text[index] == "}":
                    return index + 1
                index = self._skip(index + 1)  # past the comma
        if char == "[":
            index = self._skip(index + 1)
            if self.text[index] == "]":
                return index + 1
            position = 0
            while True:
                index = self._skip(self._value(index, (*path, position)))
                position += 1
                if self.text[index] == "]":
                    return index + 1
                index = self._skip(index + 1)
        match = _LITERAL.match(self.text, index)
        assert match is not None  # json.loads accepted the text
        self.literals[path] = Span(index, match.end())
        return match.end()

    def edited(self, replacements: dict[JsonPath, str]) -> str:
        """The text with the string (or literal) at each path replaced (kept as written where the new value is the
        old one)."""
        pieces: list[str] = []
        position = 0
        located = {path: self.spans.get(path) or self.literals[path] for path in replacements}
        for path, new in sorted(replacements.items(), key=lambda item: located[item[0]].start):
            span = located[path]
            if path in self.spans and new == scanstring(self.text, span.start + 1)[0]:
                continue
            pieces += [self.text[position : span.start], json.dumps(new, ensure_ascii=_ascii(self.text, span))]
            position = span.end
        pieces.append(self.text[position:])
        return "".join(pieces)

    def string(self, path: JsonPath) -> str:
        """The string value at ``path``."""
        return scanstring(self.text, self.spans[path].start + 1)[0]


def _ascii(text: str, span: Span) -> bool:
    """Whether the file writes non-ASCII text as ``\\uXXXX`` escapes (judged by the string being replaced)."""
    raw = text[span.start : span.end]
    return "\\u" in raw and raw.isascii()
