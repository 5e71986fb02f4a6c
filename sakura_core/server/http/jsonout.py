"""The JSON the server writes: compact UTF-8 with U+2028, U+2029 and U+0085 escaped.

Clients built on ``requests`` (LunaTranslator) split a stream with ``str.splitlines()``, which also breaks at
those three characters; written raw inside a ``data:`` line they cut the event in two. JSON allows them raw, so
every JSON body and event the server writes escapes them (``\\u2028``), which any JSON parser reads back as the
same text.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

#: The UTF-8 bytes of U+2028, U+2029 and U+0085. In valid UTF-8 these lead bytes never occur inside another
#: character, so a byte search cannot match across characters.
_RAW_BREAKERS = re.compile(b"\xe2\x80[\xa8\xa9]|\xc2\x85")
_ESCAPES = {b"\xe2\x80\xa8": b"\\u2028", b"\xe2\x80\xa9": b"\\u2029", b"\xc2\x85": b"\\u0085"}


def _escape(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match.group()]


def escape_line_breakers(raw: bytes) -> bytes:
    """``raw`` JSON with U+2028, U+2029 and U+0085 escaped (the same bytes when none occurs: the common case)."""
    if _RAW_BREAKERS.search(raw) is None:
        return raw
    return _RAW_BREAKERS.sub(_escape, raw)


def to_json(model: BaseModel) -> bytes:
    """The model as compact UTF-8 JSON, safe to split by lines."""
    return escape_line_breakers(model.__pydantic_serializer__.to_json(model))
