"""Token prefixes: how much of a prompt a sequence's cells already hold."""

from __future__ import annotations

from collections.abc import Sequence

#: Tokens compared at a time: slices compare in C, a Python loop token by token would dominate.
_CHUNK = 256


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share.

    Called for every slot and every saved state at each admission, so it compares slices (in C): chunk by chunk
    to the first chunk that differs, then halving that chunk down to a few tokens.
    """
    n = min(len(a), len(b))
    if n == 0 or a[0] != b[0]:
        return 0
    start = 0
    while start < n:
        end = min(start + _CHUNK, n)
        if a[start:end] != b[start:end]:
            break
        start = end
    else:
        return n
    # a[:start] == b[:start] and the first difference lies before ``end``
    while end - start > 8:
        middle = (start + end) // 2
        if a[start:middle] == b[start:middle]:
            start = middle
        else:
            end = middle
    while a[start] == b[start]:
        start += 1
    return start
