"""Build tiny random-weight Qwen2 checkpoints in the Transformers format, for tests, benchmarks and examples.

The weights are random, so the model's output is noise; everything around them is real: a Transformers
``Qwen2ForCausalLM`` directory (``config.json`` with Sakura's ``sakura_name``/``sakura_version``/``sakura_quant``
fields, ``generation_config.json``, safetensors weights) and a byte-level BPE tokenizer trained with
``tokenizers`` that carries the ChatML special tokens, so vLLM loads, tokenises, schedules and samples it through
its ordinary code paths.

The shape defaults suit vLLM's CPU backend: its attention accepts head sizes 32, 64, 80, ... but not 16.
``torch``, ``transformers`` and ``tokenizers`` are imported inside the functions: importing this module is free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
#: ChatML special tokens, appended after the trained vocabulary in Qwen2's order.
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
#: A ChatML chat template, so OpenAI-style chat requests render the same prompt as Sakura's own formats.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# What the tokenizer is trained on: Sakura's prompts, Japanese lines and their Chinese translations.
_TRAINING_TEXT = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。",
    "将下面的日文文本翻译成中文：",
    "根据以下术语表（可以为空）：\n将下面的日文文本根据对应关系和备注翻译成中文：",
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n",
    "やる気マンゴスキン → 干劲Mangoskin",
    "「おはようございます、先輩。今日もいい天気ですね」 “早上好，前辈。今天也是个好天气呢。”",
    "彼女は窓の外を眺めながら、小さくため息をついた。她一边眺望着窗外，一边轻轻地叹了口气。",
    "桜の花びらが舞う春の日、魔法学園の入学式が行われた。在樱花花瓣飞舞的春日里，魔法学园举行了入学典礼。",
    "俺の名前は佐藤悠人。どこにでもいる普通の高校生だ。我叫佐藤悠人，是个随处可见的普通高中生。",
    "ありがとう。本当に、ありがとう。谢谢。真的，谢谢你。",
    "The quick brown fox jumps over the lazy dog. 0123456789 Hello, world!",
    "一二三四五六七八九十百千万。、！？…—（）《》：；「」『』",
)


@dataclass(frozen=True)
class TinyModelShape:
    """The architecture of a tiny model. ``head_dim`` is ``hidden_size // num_attention_heads``."""

    hidden_size: int = 128
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    num_hidden_layers: int = 2
    intermediate_size: int = 256
    vocab_target: int = 640
    max_position_embeddings: int = 2048

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.hidden_size // self.num_attention_heads


def train_tokenizer(vocab_target: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` with all 256 byte symbols and the ChatML special tokens last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(_TRAINING_TEXT) * 4, trainer)
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


def build_tiny_model(
    directory: str | Path,
    *,
    sakura_name: str | None = "sakura-tiny-qwen2",
    sakura_version: str | None = "1.0",
    sakura_quant: str | None = "bf16",
    shape: TinyModelShape | None = None,
    seed: int = 0,
    end_of_text_bias: float = 0.0,
    torch_dtype: str = "bfloat16",
) -> Path:
    """Write a random-weight Qwen2 checkpoint with a ChatML tokenizer into ``directory`` and return its path.

    The ``sakura_*`` fields go into ``config.json`` when given (None leaves them out, like a model that says
    nothing about itself). ``end_of_text_bias`` scales the output embeddings of ``<|im_end|>`` and
    ``<|endoftext|>`` up (> 0) or down (< 0) to make ends of text more or less likely; -1 zeroes them, so the model
    practically never ends by itself (every answer runs to ``max_tokens``: fixed work for benchmarks); 0 leaves the
    random weights as they are.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = shape or TinyModelShape()
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(shape.vocab_target)
    vocab_size = tokenizer.get_vocab_size()
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    _write_tokenizer(path, tokenizer, shape.max_position_embeddings)

    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "head_dim": shape.head_dim,
        "max_position_embeddings": shape.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": ids[END_OF_TEXT],
        "eos_token_id": ids[IM_END],
        "pad_token_id": ids[END_OF_TEXT],
        "initializer_range": 0.2,
    }
    config = Qwen2Config(**settings)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, torch_dtype))
    if end_of_text_bias:
        with torch.no_grad():
            for token in (IM_END, END_OF_TEXT):
                model.lm_head.weight[ids[token]] *= 1.0 + end_of_text_bias
    model.save_pretrained(path, safe_serialization=True)

    config_file = path / "config.json"
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    saved["torch_dtype"] = torch_dtype
    saved["dtype"] = torch_dtype
    for key, value in (
        ("sakura_name", sakura_name),
        ("sakura_version", sakura_version),
        ("sakura_quant", sakura_quant),
    ):
        if value is not None:
            saved[key] = value
    config_file.write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    generation_config = {
        "bos_token_id": ids[END_OF_TEXT],
        "eos_token_id": [ids[IM_END], ids[END_OF_TEXT]],
        "pad_token_id": ids[END_OF_TEXT],
    }
    (path / "generation_config.json").write_text(json.dumps(generation_config, indent=2), encoding="utf-8")
    return path


def _write_tokenizer(path: Path, tokenizer: Any, model_max_length: int) -> None:
    tokenizer.save(str(path / "tokenizer.json"))
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in SPECIAL_TOKENS
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHATML_TEMPLATE,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    special_tokens_map = {
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "additional_special_tokens": [IM_START, IM_END],
    }
    (path / "special_tokens_map.json").write_text(json.dumps(special_tokens_map, indent=2), encoding="utf-8")
