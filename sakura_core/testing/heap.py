"""Keeping a long test process's heap out of timing checks."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within it, the garbage collector leaves alone every object that existed when it began (``gc.freeze``).

    After a thousand tests a process holds about a million objects, and a full collection among them holds the GIL
    for 0.3–0.8 s (measured in this project's suite): landing inside a check of how long the event loop waits, it
    would be blamed on the code under test. Objects made within are collected as usual; the frozen ones are
    collected again once it ends.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
