"""Where sampling parameters come from: the body, nested extra objects, URL query parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Sakura's extra sampling fields, which clients send three ways.
SAKURA_EXTRAS = ("do_sample", "num_beams", "repetition_penalty", "top_k")
#: Nested objects some clients put the extras in (the openai client's ``extra_query`` sent inside the body).
NESTED_EXTRA_OBJECTS = ("extra_query", "extra_body")


def merge_sakura_extras(body: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """The body with the Sakura extras filled in from where else they were sent.

    Precedence, highest first: the body's top level, a nested ``extra_query``/``extra_body`` object, the URL
    query (``?do_sample=false&num_beams=1``). A null value counts as absent. Query values stay strings: the
    request model parses them (``"false"`` → False).
    """
    merged = dict(body)
    nested = [body[key] for key in NESTED_EXTRA_OBJECTS if isinstance(body.get(key), Mapping)]
    for name in SAKURA_EXTRAS:
        if merged.get(name) is not None:
            continue
        for source in (*nested, query):
            value = source.get(name)
            if value is not None:
                merged[name] = value
                break
    return merged
