"""A copy of a tiny test model that only ever emits tokens made of whole UTF-8 characters.

Ollama servers before 0.12.11 send no per-token information while streaming: a chunk is whatever text the runner
could flush, and the runner holds back tokens that end inside a UTF-8 character (and drops invalid bytes). A
random-weight model emits such byte tokens all the time, so against those servers running token counts are lower
bounds (the final count is exact). Real models rarely split characters; this copy of a tiny model never does, so
tests can check that running counts are exact whenever chunks are tokens: the output rows of every token whose
bytes are not complete UTF-8 are zeroed, as the tiny model's writer does for special tokens, which makes their
logit 0 and keeps them out of greedy outputs.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path


@cache
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character standing for each byte, to the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return {chr(character): byte for byte, character in zip(printable, characters, strict=True)}


def token_bytes(token: str) -> bytes | None:
    """The bytes a byte-level BPE token stands for; None when it is not written in that alphabet."""
    alphabet = byte_level_alphabet()
    try:
        return bytes(alphabet[character] for character in token)
    except KeyError:
        return None


def is_whole_characters(token: str) -> bool:
    """True when the token's bytes are complete, valid UTF-8."""
    data = token_bytes(token)
    if data is None:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def write_whole_character_copy(source: str | Path, target: str | Path) -> tuple[Path, int]:
    """Copy an f32 tiny GGUF to ``target`` with the output rows of split-character tokens zeroed.

    Returns the copy's path and how many tokens were silenced.
    """
    from gguf import GGMLQuantizationType, GGUFReader

    target = Path(target)
    shutil.copyfile(source, target)
    reader = GGUFReader(target, "r+")
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [str(token) for token in tokens_field.contents()]
    split = [index for index, token in enumerate(tokens) if not is_whole_characters(token)]
    output = next(tensor for tensor in reader.tensors if tensor.name == "output.weight")
    if output.tensor_type != GGMLQuantizationType.F32:
        raise ValueError("write_whole_character_copy needs an f32 model")
    output.data[split, :] = 0.0
    reader.data.flush()  # the reader maps the file: the rows are written in place
    del reader
    return target, len(split)
