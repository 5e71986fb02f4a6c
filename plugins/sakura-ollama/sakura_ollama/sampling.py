"""Sakura sampling parameters as Ollama request options, and what Ollama's final chunk means for token counts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sakura_core.prompts import SAKURA_FORMATS
from sakura_core.types import FinishReason, SamplingParams

#: Stop strings of Sakura's prompt formats: the texts of their models' end tokens.
SAKURA_END_MARKERS = frozenset(stop for prompt_format in SAKURA_FORMATS for stop in prompt_format.stop)


def ollama_options(params: SamplingParams, *, num_ctx: int) -> dict[str, Any]:
    """Ollama's ``options`` for one generation, mapped one to one from ``params``.

    Greedy decoding is temperature 0 with top_k 1. ``stop`` is always sent, even empty, so that the stop
    parameters of the model's Modelfile (written for its chat template) do not apply to raw prompts.
    """
    options: dict[str, Any] = {
        "num_predict": params.max_tokens,
        "num_ctx": num_ctx,
        "repeat_penalty": params.repetition_penalty,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "stop": list(params.stop),
    }
    if params.greedy:
        options.update(temperature=0.0, top_k=1, top_p=1.0)
    else:
        options.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    if params.seed is not None:
        options["seed"] = params.seed
    return options


def text_stops(stop: Sequence[str], end_markers: Collection[str]) -> list[str]:
    """The stop strings that are plain text, not the text of one of the model's end tokens."""
    return [s for s in stop if s and s not in end_markers]


@dataclass(frozen=True)
class FinalCounts:
    """The finish reason and exact completion token count of a finished Ollama generation."""

    finish_reason: FinishReason
    completion_tokens: int


def final_counts(
    done_reason: str | None, eval_count: int | None, params: SamplingParams, *, text_stop: bool
) -> FinalCounts:
    """Interpret Ollama's last chunk.

    ``eval_count`` counts every sampled token: the end-of-sequence token included, and on a stop string every
    token up to the one that completed it. Sakura's contract counts the output with its stop strings but without
    the end token, so a generation that ended on the end token reports ``eval_count - 1``. Ollama's ``done_reason``
    is ``stop`` for both endings; ``text_stop`` tells them apart: True when plain-text stop strings were requested
    (the generation ended on one of them), False when only end markers were (it ended on the end token). A
    ``length`` ending produced exactly ``num_predict`` tokens.
    """
    count = max(int(eval_count or 0), 0)
    if done_reason in ("length", "limit"):
        return FinalCounts("length", min(count, params.max_tokens) if count else params.max_tokens)
    if not text_stop and count > 0:
        count -= 1
    return FinalCounts("stop", min(count, params.max_tokens))
