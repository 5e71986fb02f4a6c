"""StopStringFilter: stop strings found across piece boundaries, never emitted, text held back only as needed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sakura_core.stop_strings import StopStringFilter


def run(stop: Sequence[str], pieces: Sequence[str]) -> tuple[list[str], str, bool]:
    """Feed ``pieces``; return what each feed emitted, the flush, and whether a stop string was found."""
    stop_filter = StopStringFilter(stop)
    emitted = [stop_filter.feed(piece) for piece in pieces]
    return emitted, stop_filter.flush(), stop_filter.stopped


def test_without_stop_strings_everything_passes_at_once() -> None:
    assert run([], ["ab", "<|im", "_end|>"]) == (["ab", "<|im", "_end|>"], "", False)


def test_a_stop_string_inside_one_piece_cuts_the_piece() -> None:
    assert run(["<|im_end|>"], ["你好<|im_end|>后面"]) == (["你好"], "", True)


def test_a_stop_string_across_piece_boundaries_is_held_back_then_dropped() -> None:
    emitted, flushed, stopped = run(["<|im_end|>"], ["你好", "<|", "im_", "end", "|>", "之后"])
    assert emitted == ["你好", "", "", "", "", ""]
    assert (flushed, stopped) == ("", True)


def test_a_false_start_is_released_once_it_cannot_be_a_stop_string() -> None:
    emitted, flushed, stopped = run(["<|im_end|>"], ["a<|", "im", "_x", "b"])
    assert emitted == ["a", "", "<|im_x", "b"]
    assert (flushed, stopped) == ("", False)


def test_held_back_text_is_flushed_at_the_end() -> None:
    emitted, flushed, stopped = run(["<|im_end|>"], ["译文", "<|im"])
    assert emitted == ["译文", ""]
    assert (flushed, stopped) == ("<|im", False)
    assert "".join(emitted) + flushed == "译文<|im"


def test_with_several_stop_strings_the_earliest_in_the_text_wins() -> None:
    emitted, _, stopped = run(["<|im_end|>", "\n\n"], ["第一段\n", "\n第二段<|im_end|>"])
    assert emitted == ["第一段", ""]
    assert stopped
    emitted, _, _ = run(["\n\n", "<|im_end|>"], ["第一段<|im_", "end|>\n\n"])
    assert emitted == ["第一段", ""]


def test_the_longest_possible_start_of_any_stop_string_is_held_back() -> None:
    stop_filter = StopStringFilter(["<|endoftext|>", "|>!"])
    assert stop_filter.feed("x<|endof") == "x"
    assert stop_filter.feed("text|") == ""
    assert stop_filter.feed(">") == ""
    assert stop_filter.stopped


def test_a_stop_string_completed_by_a_later_piece_after_a_partial_one() -> None:
    # "aab" with stop "ab": the first "a" is released once the second "a" shows it cannot start the stop string
    emitted, flushed, stopped = run(["ab"], ["a", "a", "b", "c"])
    assert emitted == ["", "a", "", ""]
    assert (flushed, stopped) == ("", True)


def test_nothing_is_emitted_after_a_stop() -> None:
    stop_filter = StopStringFilter(["。"])
    assert stop_filter.feed("好。") == "好"
    assert stop_filter.feed("更多") == ""
    assert stop_filter.flush() == ""


def test_empty_stop_strings_are_ignored() -> None:
    assert run(["", "<|im_end|>"], ["abc"]) == (["abc"], "", False)
    assert run([""], ["abc"]) == (["abc"], "", False)


@pytest.mark.parametrize("split", range(1, 12))
def test_every_split_of_a_text_gives_the_same_output(split: int) -> None:
    text = "甲乙丙<|im_end|>丁"
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    emitted, flushed, stopped = run(["<|im_end|>", "<|endoftext|>"], pieces)
    assert "".join(emitted) + flushed == "甲乙丙"
    assert stopped


def test_random_pieces_give_what_cutting_the_whole_text_gives() -> None:
    """Pieces of every size over a small alphabet, with overlapping stop strings: the output always equals the
    whole text cut before its first stop string (the fast path for pieces that cannot start one included)."""
    import random

    rng = random.Random(7)
    stops = ["<|e|>", "ab", "bab", "<|x"]
    for _ in range(2000):
        text = "".join(rng.choice("ab<|ex>c") for _ in range(rng.randrange(0, 30)))
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randrange(0, 8)))) if text else []
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        stop_filter = StopStringFilter(stops)
        out = "".join(stop_filter.feed(piece) for piece in pieces) + stop_filter.flush()
        first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
        assert out == text[:first], (pieces, out)
        assert stop_filter.stopped is (first < len(text))
