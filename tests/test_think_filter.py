"""LeadingThinkFilter: a reasoning block that opens a reply never reaches a client; everything else passes as it is."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
from sakura_echo.scripted import ReferenceEngine, ReferenceOptions

from sakura_core.loaded_model import LoadedModel
from sakura_core.plugins import PluginRegistry
from sakura_core.think_filter import LeadingThinkFilter
from sakura_core.types import Delta, GenerationRequest, SamplingParams


def run(pieces: Sequence[str]) -> tuple[list[str], str]:
    """Feed ``pieces``; return what each feed emitted and the flush."""
    think = LeadingThinkFilter()
    return [think.feed(piece) for piece in pieces], think.flush()


def filtered(text: str, cuts: Sequence[int]) -> str:
    """``text`` cut into pieces at ``cuts`` and fed through a filter."""
    bounds = [0, *cuts, len(text)]
    emitted, flushed = run([text[a:b] for a, b in itertools.pairwise(bounds)])
    return "".join(emitted) + flushed


# (reply, what the client sees)
REPLIES = [
    ("<think>\n理由\n</think>\n\n「早上好，前辈」", "「早上好，前辈」"),
    ("\n<think>\n\n</think>\n\n她笑了。", "她笑了。"),
    ("<think>\n</think>　她笑了。", "　她笑了。"),  # the ideographic space indents the answer: it stays
    ("她笑了。<think>不是开头</think>", "她笑了。<think>不是开头</think>"),
    ("<thing>", "<thing>"),
    ("  \n 她", "  \n 她"),
    ("<think>\n一直在想", ""),
    ("<thi", "<thi"),
    ("", ""),
]


@pytest.mark.parametrize(("reply", "seen"), REPLIES)
def test_the_reply_a_client_sees_whatever_the_pieces(reply: str, seen: str) -> None:
    for count in (0, 1, 2):
        for cuts in itertools.combinations(range(1, len(reply)), count):
            assert filtered(reply, cuts) == seen, cuts


def test_a_reply_without_reasoning_passes_at_once_once_it_cannot_be_think() -> None:
    assert run(["她", "笑", "了"]) == (["她", "笑", "了"], "")
    assert run(["<", "t", "h", "x", "y"]) == (["", "", "", "<thx", "y"], "")


def test_the_block_is_held_back_while_it_lasts_and_the_answer_flows_after_it() -> None:
    emitted, flushed = run(["<think>", "\n想", "一想\n</th", "ink>\n", "\n", "她", "笑"])
    assert emitted == ["", "", "", "", "", "她", "笑"]
    assert flushed == ""


def test_filter_keeps_the_counts_and_flushes_at_the_last_delta() -> None:
    think = LeadingThinkFilter()
    first = think.filter(Delta(text="<th", prompt_tokens=5, completion_tokens=1))
    last = think.filter(Delta(text="", prompt_tokens=5, completion_tokens=2, finish_reason="length"))
    assert (first.text, first.completion_tokens) == ("", 1)
    assert (last.text, last.completion_tokens, last.finish_reason) == ("<th", 2, "length")


THINKING_ANSWER = "<think>\n让我想想。\n</think>\n\n干劲Mangoskin"


class ThinkingEngine(ReferenceEngine):
    """Answers every prompt with a reasoning block, then the translation, as a thinking Qwen3 would."""

    def answer_for(self, prompt: str, params: SamplingParams) -> str:
        return THINKING_ANSWER


@pytest.mark.parametrize(("version", "seen"), [("1.5", "干劲Mangoskin"), ("1.0", THINKING_ANSWER)])
async def test_the_core_drops_the_block_for_formats_that_ask(version: str, seen: str) -> None:
    """v1.5 declares ``strip_think``; the core applies it to every generation, streamed or not."""
    registry = PluginRegistry.create(entry_points=False)
    engine = ThinkingEngine(ReferenceOptions(answer_length=64))
    model = await engine.load("sakura-14b-qwen3-v1.5-q4km.gguf", model_version=version)
    request = GenerationRequest(prompt="やる気マンゴスキン", params=SamplingParams(max_tokens=64))
    result = await LoadedModel(engine, registry, model).complete(request)
    assert (result.text, result.completion_tokens, result.finish_reason) == (seen, len(THINKING_ANSWER), "stop")
    stream: AsyncIterator[Delta] = LoadedModel(engine, registry, model).stream(request)
    assert "".join([delta.text async for delta in stream]) == seen
