"""Write tiny random-weight Qwen2 GGUF models that real llama.cpp loads, for tests, benchmarks and examples.

The model is no translator: its weights are random, so its output is noise. What is real is everything around
the weights: a GGUF file in the ``qwen2`` architecture, a byte-level BPE vocabulary trained with ``tokenizers``
(all 256 byte tokens, merges, the ChatML special tokens typed CONTROL), and a Sakura-style file name, so loading,
tokenisation, batching, sampling and identity all run through the real code paths.

``gguf``, ``numpy`` and ``tokenizers`` are imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

#: File name used when ``write_tiny_gguf`` is given a directory.
DEFAULT_FILE_NAME = "sakura-tiny-qwen2-v1.0-f32.gguf"
#: Special tokens, in Qwen2's order, appended after the trained vocabulary.
END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

FileType = Literal["f32", "f16", "q8_0"]

# Text the BPE vocabulary is trained on: Sakura prompts, Japanese source lines and Chinese translations.
_CORPUS = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。",
    "将下面的日文文本翻译成中文：",
    "根据以下术语表（可以为空）：\n将下面的日文文本根据对应关系和备注翻译成中文：",
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n",
    "やる気マンゴスキン",
    "干劲Mangoskin",
    "「おはようございます、先輩。今日もいい天気ですね」",
    "“早上好，前辈。今天也是个好天气呢。”",
    "彼女は窓の外を眺めながら、小さくため息をついた。",
    "她一边眺望着窗外，一边轻轻地叹了口气。",
    "魔法学園の入学式は、桜の花びらが舞う春の日に行われた。",
    "魔法学园的入学典礼，是在樱花花瓣飞舞的春日里举行的。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。",
    "我的名字叫佐藤悠人，是个随处可见的普通高中生。",
    "ありがとう。本当に、ありがとう。",
    "谢谢。真的，谢谢你。",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Hello, world! Sakura translates light novels from Japanese into Chinese.",
    "一二三四五六七八九十百千万。、！？…—（）《》：；",
)


def _byte_level_bpe(vocab_size: int) -> tuple[list[str], list[str]]:
    """Train a byte-level BPE on the built-in corpus; return (tokens by id, merges as 'a b' strings)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=1,
    )
    tokenizer.train_from_iterator(list(_CORPUS) * 4, trainer)
    vocab: dict[str, int] = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise RuntimeError("the trained vocabulary has holes in its ids")
    model = json.loads(tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    known = set(tokens)
    for merge in merges:  # llama.cpp requires every merge result to be a token
        if merge.replace(" ", "") not in known:
            raise RuntimeError(f"merge {merge!r} produces a token missing from the vocabulary")
    return tokens, merges


def _random(rng: Any, shape: Iterable[int], scale: float) -> Any:
    import numpy as np

    return (rng.standard_normal(tuple(shape)) * scale).astype(np.float32)


def write_tiny_gguf(
    path: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    ffn: int | None = None,
    vocab_size: int = 512,
    context_length: int = 4096,
    file_type: FileType = "f32",
    name: str = "sakura-tiny-qwen2-v1.0",
    seed: int = 0,
    eos_like_token: int | None = None,
    architecture: str = "qwen2",
) -> Path:
    """Write a random-weight Qwen2 GGUF to ``path`` (a file, or a directory for ``DEFAULT_FILE_NAME``).

    ``hidden``/``layers``/``heads``/``kv_heads``/``ffn`` (default ``2 * hidden``) shape the transformer;
    ``vocab_size`` caps the trained BPE (the built-in corpus yields about 920 tokens at most), before the three
    special tokens are appended;
    ``file_type`` stores 2-D weights as f32, f16 or q8_0 (norms stay f32). The same ``seed`` gives the same
    weights. The output layer is scaled so that logits are well separated, which keeps greedy decoding stable
    across batch sizes; the special tokens get zero output rows, so the model practically never emits them,
    unless ``eos_like_token`` names a token id: then ``<|im_end|>`` takes a slightly scaled copy of that
    token's output row and wins wherever the model would have emitted that token, ending the generation there.
    ``architecture`` other than ``qwen2`` writes the same tensors under another name (for error-path tests).
    Returns the written file's path.
    """
    import gguf
    import numpy as np

    target = Path(path)
    if target.is_dir():
        target = target / DEFAULT_FILE_NAME
    if hidden % heads or (hidden // heads) % 2:
        raise ValueError("hidden must be a multiple of heads with an even head dimension")
    if heads % kv_heads:
        raise ValueError("heads must be a multiple of kv_heads")
    ffn = ffn or 2 * hidden
    qtypes = {
        "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    }
    if file_type not in qtypes:
        raise ValueError(f"file_type must be one of {', '.join(qtypes)}")
    weight_qtype, llama_file_type = qtypes[file_type]

    tokens, merges = _byte_level_bpe(vocab_size)
    first_special = len(tokens)
    tokens += list(SPECIAL_TOKENS)
    n_vocab = len(tokens)
    token_types = [gguf.TokenType.NORMAL] * first_special + [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    eot_id, im_end_id = tokens.index(END_OF_TEXT), tokens.index(IM_END)
    if eos_like_token is not None and not 0 <= eos_like_token < first_special:
        raise ValueError(f"eos_like_token must be an ordinary token id below {first_special}")

    head_dim = hidden // heads
    writer = gguf.GGUFWriter(str(target), architecture)
    writer.add_name(name)
    writer.add_file_type(int(llama_file_type))
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(eot_id)
    writer.add_eos_token_id(im_end_id)
    writer.add_pad_token_id(eot_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    rng = np.random.default_rng(seed)

    def add_weight(tensor_name: str, data: Any) -> None:
        if weight_qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(tensor_name, data)
        else:
            writer.add_tensor(tensor_name, gguf.quants.quantize(data, weight_qtype), raw_dtype=weight_qtype)

    def add_norm(tensor_name: str, size: int) -> None:
        writer.add_tensor(tensor_name, (1.0 + _random(rng, (size,), 0.1)).astype(np.float32))

    add_weight("token_embd.weight", _random(rng, (n_vocab, hidden), 1.0))
    inner = 1.0 / np.sqrt(hidden)
    for block in range(layers):
        prefix = f"blk.{block}."
        add_norm(prefix + "attn_norm.weight", hidden)
        add_weight(prefix + "attn_q.weight", _random(rng, (heads * head_dim, hidden), inner))
        writer.add_tensor(prefix + "attn_q.bias", _random(rng, (heads * head_dim,), 0.1))
        add_weight(prefix + "attn_k.weight", _random(rng, (kv_heads * head_dim, hidden), inner))
        writer.add_tensor(prefix + "attn_k.bias", _random(rng, (kv_heads * head_dim,), 0.1))
        add_weight(prefix + "attn_v.weight", _random(rng, (kv_heads * head_dim, hidden), inner))
        writer.add_tensor(prefix + "attn_v.bias", _random(rng, (kv_heads * head_dim,), 0.1))
        add_weight(prefix + "attn_output.weight", _random(rng, (hidden, heads * head_dim), inner))
        add_norm(prefix + "ffn_norm.weight", hidden)
        add_weight(prefix + "ffn_gate.weight", _random(rng, (ffn, hidden), inner))
        add_weight(prefix + "ffn_up.weight", _random(rng, (ffn, hidden), inner))
        add_weight(prefix + "ffn_down.weight", _random(rng, (hidden, ffn), 1.0 / np.sqrt(ffn)))
    add_norm("output_norm.weight", hidden)
    # logits with a standard deviation of about 4: greedy choices are far from ties
    output = _random(rng, (n_vocab, hidden), 4.0 / np.sqrt(hidden))
    output[first_special:] = 0.0
    if eos_like_token is not None:
        output[im_end_id] = output[eos_like_token] * 1.001
    add_weight("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
