"""The rebuilt tokenizers count exactly what llama.cpp's tokenizer counts, for BPE and SentencePiece vocabularies."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest
from sakura_ollama.testing.api_server import GGUFSummary
from sakura_ollama.tokenizer import end_of_generation_texts, tokenizer_from_model_info

TEXTS = [
    "",
    "a",
    "<|im_start|>system\n你是一个轻小说翻译模型。<|im_end|>\n<|im_start|>user\n将下面的日文文本翻译成中文：やる気マンゴスキン<|im_end|>\n<|im_start|>assistant\n",
    "「おはようございます、先輩。今日もいい天気ですね」\n「待って！　まだ話は終わってない！」",
    "The quick brown fox's 12345 jumps... it's    over   there\n\n\n  ok\t\ttabs",
    "I'll've we'd THEY'RE 3.14159 1,000,000 x²",
    "émoji 🌸🍣 and 𠮷野家, ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "<|im_end|><|im_end|>text<|endoftext|>  <|im_start|>",
    "\n \n\t\n  trailing spaces   ",
    "鬱蒼とした森の奥、龘靐齉麤。",
    "<|im_start|",  # not a special token
]


def llama_cpp_count(path: Path, text: str) -> int:
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return len(llm.tokenize(text.encode(), add_bos=True, special=True))
    finally:
        llm.close()


def test_byte_level_bpe_counts_like_llama_cpp(tiny_gguf: Path) -> None:
    counter = tokenizer_from_model_info(GGUFSummary.read(tiny_gguf).model_info(verbose=True))
    assert counter is not None and counter.description.startswith("byte-level BPE (qwen2)")
    for text in TEXTS:
        assert counter.count(text) == llama_cpp_count(tiny_gguf, text), text


def test_no_vocabulary_means_no_tokenizer(tiny_gguf: Path) -> None:
    info = GGUFSummary.read(tiny_gguf).model_info(verbose=False)  # arrays left out, as without verbose
    assert tokenizer_from_model_info(info) is None
    assert tokenizer_from_model_info({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["a"]}) is None


def test_an_unknown_pre_tokenizer_means_no_tokenizer(tiny_gguf: Path) -> None:
    info = GGUFSummary.read(tiny_gguf).model_info(verbose=True)
    info["tokenizer.ggml.pre"] = "some-future-model"
    assert tokenizer_from_model_info(info) is None


def test_end_markers_are_the_control_tokens_and_eos(tiny_gguf: Path) -> None:
    info = GGUFSummary.read(tiny_gguf).model_info(verbose=True)
    assert end_of_generation_texts(info) == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}


@pytest.fixture(scope="module")
def sentencepiece_vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vocabulary-only GGUF with a SentencePiece (``llama``) tokenizer, as Baichuan-based Sakura v0.8 has.

    Pieces come from a BPE trained with ``tokenizers`` on Sakura-like text (``▁`` for spaces); a piece's score is
    minus its rank, so earlier merges win, as in SentencePiece BPE models; 256 byte tokens cover the rest.
    """
    import gguf
    from tokenizers import SentencePieceBPETokenizer

    corpus = [
        "将下面的日文文本翻译成中文：やる気マンゴスキン 干劲Mangoskin",
        "彼女は窓の外を眺めながら、小さくため息をついた。 她一边眺望着窗外，一边轻轻地叹了口气。",
        "The quick brown fox jumps over the lazy dog. It's a test, isn't it? 12345",
        "「おはようございます、先輩。今日もいい天気ですね」 “早上好，前辈。”",
    ] * 8
    trainer = SentencePieceBPETokenizer(add_prefix_space=True)
    trainer.train_from_iterator(corpus, vocab_size=400, min_frequency=1, show_progress=False)
    pieces = [piece for piece, _ in sorted(trainer.get_vocab().items(), key=lambda item: item[1])]
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256))]
    types = [2, 3, 3, *([6] * 256)]
    scores = [0.0, 0.0, 0.0, *([0.0] * 256)]
    for rank, piece in enumerate(pieces):
        if piece not in tokens:
            tokens.append(piece)
            types.append(1)
            scores.append(-float(rank))
    path = tmp_path_factory.mktemp("spm") / "sakura-spm-vocab-v0.8.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(512)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_sentencepiece_counts_like_llama_cpp(sentencepiece_vocab: Path) -> None:
    info = GGUFSummary.read(sentencepiece_vocab).model_info(verbose=True)
    counter = tokenizer_from_model_info(info)
    assert counter is not None and counter.description.startswith("SentencePiece")
    for text in [*TEXTS, "<s>将下面的日文文本</s>翻译", " leading space", "a  b   c"]:
        assert counter.count(text) == llama_cpp_count(sentencepiece_vocab, text), text
