"""Bounds that follow from the model's context: sizes no real request for that context can exceed.

A request whose prompt cannot fit the context is refused by its size, before its body is parsed or its prompt
tokenised, so that a client cannot make the server spend seconds on text it will refuse anyway.
"""

from __future__ import annotations

#: The most text one token can stand for, in UTF-8 bytes (hence also in characters). A token is one piece of
#: the model's vocabulary; real text averages 1.5 to 4 bytes a token, and the longest pieces of the BPE and
#: SentencePiece vocabularies Sakura models use are runs of spaces or punctuation far shorter than this.
MAX_TEXT_BYTES_PER_TOKEN = 256
#: How much JSON can grow text: a client that escapes every non-ASCII character (Python's ``json.dumps``
#: default, so ``requests`` and the ``openai`` package) writes 3 bytes of CJK as 6 and a 4-byte emoji as 12.
JSON_EXPANSION = 3
#: Room in a body for everything that is not prompt text: field names, sampling values, stop strings, the
#: fields clients send that the server ignores.
BODY_ALLOWANCE_BYTES = 64 * 1024


def max_prompt_chars(context_tokens: int) -> int:
    """Characters past which a prompt cannot fit a context of ``context_tokens`` tokens, whatever the model."""
    return context_tokens * MAX_TEXT_BYTES_PER_TOKEN


def max_body_bytes(context_tokens: int) -> int:
    """Bytes past which a request body cannot hold a prompt that fits a context of ``context_tokens`` tokens."""
    return max_prompt_chars(context_tokens) * JSON_EXPANSION + BODY_ALLOWANCE_BYTES
