"""Token prefixes: how much of a prompt a sequence's cells already hold."""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the common case (a cached prefix), compared in C
        return n
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n  # not reached
