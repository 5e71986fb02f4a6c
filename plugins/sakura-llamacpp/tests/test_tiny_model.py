"""The tiny GGUF generator: a real Qwen2 GGUF with a byte-level BPE vocabulary and ChatML control tokens."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
from sakura_llamacpp.tiny_model import DEFAULT_FILE_NAME, SPECIAL_TOKENS, write_tiny_gguf


def byte_level_alphabet() -> set[str]:
    """The 256 printable characters GPT-2 style byte-level BPE uses for the bytes 0-255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = 0
    characters = []
    for byte in range(256):
        if byte in printable:
            characters.append(chr(byte))
        else:
            characters.append(chr(256 + extra))
            extra += 1
    return set(characters)


def field_values(reader: object, key: str) -> list[object]:
    field = reader.fields[key]  # type: ignore[attr-defined]
    return [field.contents(i) for i in range(len(field.data))]


def test_writes_a_qwen2_gguf_with_byte_tokens_and_chatml_control_tokens(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path)
    assert path.name == DEFAULT_FILE_NAME
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == "qwen2"
    assert reader.fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert reader.fields["tokenizer.ggml.pre"].contents() == "qwen2"
    tokens = field_values(reader, "tokenizer.ggml.tokens")
    types = field_values(reader, "tokenizer.ggml.token_type")
    assert byte_level_alphabet() <= set(tokens)  # every byte has its token
    for special in SPECIAL_TOKENS:
        assert types[tokens.index(special)] == gguf.TokenType.CONTROL
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == tokens.index("<|im_end|>")
    merges = field_values(reader, "tokenizer.ggml.merges")
    assert merges and all(str(m).replace(" ", "") in set(tokens) for m in merges)
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert list(embedding.shape) == [64, len(tokens)]


def test_shapes_file_types_and_seed(tmp_path: Path) -> None:
    a = write_tiny_gguf(tmp_path / "a-v1.0-q8_0.gguf", hidden=128, layers=3, heads=4, kv_heads=1, file_type="q8_0")
    b = write_tiny_gguf(tmp_path / "b-v1.0-q8_0.gguf", hidden=128, layers=3, heads=4, kv_heads=1, file_type="q8_0")
    c = write_tiny_gguf(
        tmp_path / "c-v1.0-q8_0.gguf", hidden=128, layers=3, heads=4, kv_heads=1, file_type="q8_0", seed=1
    )
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    reader = gguf.GGUFReader(str(a))
    assert reader.fields["qwen2.block_count"].contents() == 3
    assert reader.fields["qwen2.attention.head_count_kv"].contents() == 1
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    k = next(t for t in reader.tensors if t.name == "blk.0.attn_k.weight")
    assert list(k.shape) == [128, 32]  # (in, out) in GGUF order: one KV head of dimension 32


def test_rejects_impossible_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kv_heads"):
        write_tiny_gguf(tmp_path, heads=4, kv_heads=3)
    with pytest.raises(ValueError, match="file_type"):
        write_tiny_gguf(tmp_path, file_type="q4_k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eos_like_token"):
        write_tiny_gguf(tmp_path, eos_like_token=10**6)
