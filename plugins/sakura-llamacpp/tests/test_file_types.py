"""The model's quantisation is named from gguf's table without importing the gguf package (about 50 MB that an
idle server would hold)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
from sakura_llamacpp.file_types import quant_name

LOAD_AND_REPORT = """
import asyncio, json, sys
from sakura_llamacpp import native
from sakura_llamacpp.engine import LlamaCppEngine
from sakura_llamacpp.options import LlamaCppOptions

async def main():
    engine = LlamaCppEngine(LlamaCppOptions(n_ctx=256, n_parallel=1))
    await engine.load(sys.argv[1])
    quant = native.file_type_name(engine._loaded)
    await engine.close()
    print(json.dumps({"quant": quant, "gguf_imported": "gguf" in sys.modules}))

asyncio.run(main())
"""


def test_loading_a_model_names_its_quantisation_without_importing_gguf(tiny_gguf: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_REPORT, str(tiny_gguf)], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"quant": "F32", "gguf_imported": False}


def test_every_file_type_is_named_as_gguf_names_it() -> None:
    for file_type in gguf.LlamaFileType:
        if file_type == gguf.LlamaFileType.GUESSED:  # a flag, not a type
            continue
        assert quant_name(int(file_type)) == file_type.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert quant_name(int(file_type) | 1024) == quant_name(int(file_type))  # the "guessed" flag
    assert quant_name(9999) is None
