"""Quantisation names of GGUF file types (``Q4_K_M``, ``IQ4_XS``, ``F16``), from the ``gguf`` library's table.

Importing the ``gguf`` package imports all of it: its reader, writer and quantisers (numpy) and its tokenizer
support (mistral_common and sentencepiece where installed), some 50 MB that a server would hold for its whole
life to name one number. Only the module that holds the table, ``gguf/constants.py`` (which imports nothing but
the standard library), is loaded here, under a private name; a ``gguf`` package already imported is used as it is.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from enum import IntEnum
from pathlib import Path
from typing import cast

#: The name the table's module is loaded under (not ``gguf.constants``: a later ``import gguf`` loads its own).
PRIVATE_NAME = "sakura_llamacpp._gguf_constants"


@functools.cache
def _file_types() -> type[IntEnum] | None:
    """gguf's ``LlamaFileType``, or None when gguf is not installed."""
    package = sys.modules.get("gguf")
    if package is not None:
        return cast(type[IntEnum], package.LlamaFileType)
    found = importlib.util.find_spec("gguf")  # finds the package without running its __init__
    if found is None or not found.submodule_search_locations:
        return None
    location = Path(next(iter(found.submodule_search_locations))) / "constants.py"
    spec = importlib.util.spec_from_file_location(PRIVATE_NAME, location)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE_NAME] = module  # its enums and dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[PRIVATE_NAME]
        return None
    return cast(type[IntEnum], module.LlamaFileType)


def quant_name(file_type: int) -> str | None:
    """The quantisation name of a GGUF ``general.file_type`` (the "guessed" flag, 1024, cleared), or None when
    gguf does not know the number or is not installed."""
    table = _file_types()
    if table is None:
        return None
    try:
        name = table(file_type & ~1024).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")
