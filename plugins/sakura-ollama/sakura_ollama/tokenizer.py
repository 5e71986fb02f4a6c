"""Count tokens the way the model's llama.cpp tokenizer does, from the vocabulary Ollama reports.

Ollama has no tokenize route, and ``count_tokens`` must answer at once, without a request. ``/api/show`` with
``verbose`` returns the GGUF's tokenizer metadata (``tokenizer.ggml.*``), from which this module rebuilds the
tokenizer: special tokens are split off first (as llama.cpp does with ``parse_special``, as Ollama tokenizes prompts),
then each plain fragment is tokenised with

* byte-level BPE (``tokenizer.ggml.model`` ``gpt2``: Qwen-based Sakura and GalTransl models), through the
  ``tokenizers`` library with llama.cpp's pre-tokenizer pattern for the model's ``tokenizer.ggml.pre``;
* SentencePiece (``llama``: Baichuan-based Sakura v0.8), with llama.cpp's algorithm: merge the adjacent pair
  whose joined text is the best-scored token, until none is left; unknown characters fall back to byte tokens.

Anything else returns no tokenizer; the engine then estimates and says so.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: GGUF token types (tokenizer.ggml.token_type) that llama.cpp splits off as whole tokens when parsing specials.
UNKNOWN_TOKEN, CONTROL_TOKEN, USER_DEFINED_TOKEN = 2, 3, 4
SPECIAL_TOKEN_TYPES = frozenset({UNKNOWN_TOKEN, CONTROL_TOKEN, USER_DEFINED_TOKEN})

_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#: llama.cpp's pre-tokenizer patterns, by tokenizer.ggml.pre.
PRE_TOKENIZER_PATTERNS = {
    "qwen2": _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama3": _CONTRACTIONS
    + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
PRE_TOKENIZER_ALIASES = {
    "qwen2": "qwen2",
    "deepseek-r1-qwen": "qwen2",
    "llama3": "llama3",
    "llama-v3": "llama3",
    "llama-bpe": "llama3",
    "falcon3": "llama3",
}


class TokenCounter(Protocol):
    """Counts the tokens of a prompt."""

    #: A short description for logs, e.g. ``byte-level BPE (qwen2), 151,936 tokens``.
    description: str

    def count(self, text: str) -> int:
        """The number of tokens ``text`` is as a prompt, special tokens in it parsed as such."""
        ...


class SpecialTokenSplitter:
    """Splits text into plain fragments and special-token ids, longest special token first at each position."""

    def __init__(self, specials: Mapping[str, int]) -> None:
        self._ids = dict(specials)
        names = sorted((t for t in self._ids if t), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, names))) if names else None

    def split(self, text: str) -> list[str | int]:
        """Plain-text fragments (str) and special tokens (int ids), in order."""
        if self._pattern is None:
            return [text] if text else []
        parts: list[str | int] = []
        position = 0
        for match in self._pattern.finditer(text):
            if match.start() > position:
                parts.append(text[position : match.start()])
            parts.append(self._ids[match.group()])
            position = match.end()
        if position < len(text):
            parts.append(text[position:])
        return parts


@dataclass
class ByteLevelBPECounter:
    """Byte-level BPE (GGUF ``gpt2`` tokenizers) through the ``tokenizers`` library."""

    splitter: SpecialTokenSplitter
    encode: Callable[[str], int]
    add_bos: bool
    add_eos: bool
    description: str

    def count(self, text: str) -> int:
        """Tokens of ``text`` plus the BOS/EOS tokens the model adds to a prompt."""
        total = int(self.add_bos) + int(self.add_eos)
        for part in self.splitter.split(text):
            total += 1 if isinstance(part, int) else self.encode(part)
        return total


def byte_level_bpe(
    tokens: Sequence[str],
    merges: Sequence[str],
    specials: Mapping[str, int],
    *,
    pre: str,
    add_bos: bool,
    add_eos: bool,
) -> ByteLevelBPECounter | None:
    """A byte-level BPE counter, or None when the pre-tokenizer is not one this module knows."""
    pattern_name = PRE_TOKENIZER_ALIASES.get(pre)
    if pattern_name is None:
        return None
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(tokens)}
    pairs: list[tuple[str, str]] = []
    for merge in merges:
        left, space, right = merge.partition(" ")
        if space:
            pairs.append((left, right))
    model = models.BPE(vocab=vocab, merges=pairs, ignore_merges=pattern_name == "llama3")
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_TOKENIZER_PATTERNS[pattern_name]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )

    def encode(fragment: str) -> int:
        return len(tokenizer.encode(fragment, add_special_tokens=False).ids)

    return ByteLevelBPECounter(
        SpecialTokenSplitter(specials), encode, add_bos, add_eos, f"byte-level BPE ({pre}), {len(tokens):,} tokens"
    )


@dataclass
class SentencePieceCounter:
    """SentencePiece vocabularies (GGUF ``llama`` tokenizers), tokenised with llama.cpp's merge-by-score loop."""

    splitter: SpecialTokenSplitter
    scores: dict[str, float]
    byte_tokens: bool
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    description: str

    def count(self, text: str) -> int:
        """Tokens of ``text`` plus the BOS/EOS tokens the model adds to a prompt."""
        total = int(self.add_bos) + int(self.add_eos)
        previous_special = True
        for part in self.splitter.split(text):
            if isinstance(part, int):
                total += 1
                previous_special = True
                continue
            fragment = (" " if self.add_space_prefix and previous_special else "") + part
            total += self._count_fragment(fragment.replace(" ", "\u2581"))
            previous_special = False
        return total

    def _count_fragment(self, text: str) -> int:
        symbols = list(text)
        if not symbols:
            return 0
        alive = [True] * len(symbols)
        next_index = [*range(1, len(symbols)), -1]
        previous_index = list(range(-1, len(symbols) - 1))
        queue: list[tuple[float, int, int, int]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            joined = symbols[left] + symbols[right]
            score = self.scores.get(joined)
            if score is not None:
                # highest score first, then the leftmost pair; the length tells a stale entry
                heapq.heappush(queue, (-score, left, right, len(joined)))

        for index in range(1, len(symbols)):
            push(index - 1, index)
        while queue:
            _, left, right, length = heapq.heappop(queue)
            if not (alive[left] and alive[right]) or len(symbols[left]) + len(symbols[right]) != length:
                continue
            if next_index[left] != right:
                continue
            symbols[left] += symbols[right]
            alive[right] = False
            next_index[left] = next_index[right]
            if next_index[right] >= 0:
                previous_index[next_index[right]] = left
            push(previous_index[left], left)
            push(left, next_index[left])
        total = 0
        for index, symbol in enumerate(symbols):
            if not alive[index]:
                continue
            if symbol in self.scores or not self.byte_tokens:
                total += 1
            else:
                total += len(symbol.encode("utf-8"))
        return total


def sentencepiece(
    tokens: Sequence[str],
    scores: Sequence[float] | None,
    types: Sequence[int],
    specials: Mapping[str, int],
    *,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
) -> SentencePieceCounter:
    """A SentencePiece counter from the GGUF vocabulary (tokens, scores and token types)."""
    by_text: dict[str, float] = {}
    for index, token in enumerate(tokens):
        token_type = types[index] if index < len(types) else 1
        if token_type in SPECIAL_TOKEN_TYPES or token_type == 6:  # 6: byte tokens <0xXX>, not text pieces
            continue
        score = float(scores[index]) if scores is not None and index < len(scores) else 0.0
        by_text.setdefault(token, score)
    byte_tokens = any(t == 6 for t in types) or "<0x00>" in tokens
    return SentencePieceCounter(
        SpecialTokenSplitter(specials),
        by_text,
        byte_tokens,
        add_bos,
        add_eos,
        add_space_prefix,
        f"SentencePiece, {len(tokens):,} tokens",
    )


def tokenizer_from_model_info(info: Mapping[str, Any]) -> TokenCounter | None:
    """A token counter from ``/api/show``'s ``model_info`` (GGUF ``tokenizer.ggml.*`` keys), or None.

    None when the vocabulary is missing (a server that does not return it) or of a kind this module does not
    rebuild exactly.
    """
    kind = info.get("tokenizer.ggml.model")
    tokens = info.get("tokenizer.ggml.tokens") or []
    if not tokens or kind not in ("gpt2", "llama"):
        return None
    types = list(info.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    specials = {
        token: index
        for index, token in enumerate(tokens)
        if index < len(types) and types[index] in SPECIAL_TOKEN_TYPES and token
    }
    add_eos = bool(info.get("tokenizer.ggml.add_eos_token", False))
    if kind == "gpt2":
        merges = info.get("tokenizer.ggml.merges") or []
        if not merges:
            return None
        return byte_level_bpe(
            tokens,
            merges,
            specials,
            pre=str(info.get("tokenizer.ggml.pre") or "default"),
            add_bos=bool(info.get("tokenizer.ggml.add_bos_token", False)),
            add_eos=add_eos,
        )
    return sentencepiece(
        tokens,
        info.get("tokenizer.ggml.scores"),
        types,
        specials,
        add_bos=bool(info.get("tokenizer.ggml.add_bos_token", True)),
        add_eos=add_eos,
        add_space_prefix=bool(info.get("tokenizer.ggml.add_space_prefix", True)),
    )


def end_of_generation_texts(info: Mapping[str, Any]) -> frozenset[str]:
    """Texts of the model's special tokens (control tokens and the EOS/EOT ids), which end a generation.

    A stop string equal to one of these is an end marker: the model emits it as a single special token, which
    Ollama treats as the end of the sequence.
    """
    tokens = info.get("tokenizer.ggml.tokens") or []
    types = info.get("tokenizer.ggml.token_type") or []
    found = {tokens[i] for i in range(min(len(tokens), len(types))) if types[i] == CONTROL_TOKEN and tokens[i]}
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        index = info.get(key)
        if isinstance(index, int) and 0 <= index < len(tokens):
            found.add(tokens[index])
    return frozenset(found)
