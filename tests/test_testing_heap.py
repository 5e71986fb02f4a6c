"""frozen_heap: the objects that existed before it are out of the garbage collector's way within it, and back
after it."""

from __future__ import annotations

import gc

from sakura_core.testing.heap import frozen_heap


def collector_sees(thing: object) -> bool:
    return any(tracked is thing for tracked in gc.get_objects())


def test_the_objects_made_before_are_frozen_within_and_collectable_after() -> None:
    before: list[object] = []
    with frozen_heap():
        within: list[object] = []
        assert not collector_sees(before) and collector_sees(within)
        assert gc.get_freeze_count() > 0
    assert collector_sees(before) and collector_sees(within)
    assert gc.get_freeze_count() == 0
