"""Sakura's sampling parameters as vLLM's, one to one, streaming deltas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sakura_core.types import SamplingParams


def split_stop(stop: list[str], special_token_ids: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """Separate stop strings that are one special token (``<|im_end|>``) from plain ones.

    vLLM leaves special tokens out of the text it decodes, so a stop string such as ``<|im_end|>`` would never
    match; stopping on the token's id instead has the same effect. Empty strings are dropped.
    """
    strings: list[str] = []
    token_ids: list[int] = []
    for item in stop:
        if not item:
            continue
        token_id = special_token_ids.get(item)
        if token_id is not None:
            if token_id not in token_ids:
                token_ids.append(token_id)
        elif item not in strings:
            strings.append(item)
    return strings, token_ids


def vllm_sampling_kwargs(params: SamplingParams, special_token_ids: Mapping[str, int]) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` that do what ``params`` asks, with delta outputs.

    Greedy decoding (``do_sample`` false or temperature 0) is vLLM's temperature 0. Stop strings are not part of
    the output (``include_stop_str_in_output`` false); special tokens are left out of the text.
    """
    stop, stop_token_ids = split_stop(params.stop, special_token_ids)
    greedy = params.greedy
    return {
        "n": 1,
        "max_tokens": params.max_tokens,
        "temperature": 0.0 if greedy else params.temperature,
        "top_p": 1.0 if greedy else params.top_p,
        "top_k": 0 if greedy else params.top_k,
        "repetition_penalty": params.repetition_penalty,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "seed": params.seed,
        "stop": stop,
        "stop_token_ids": stop_token_ids,
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
    }


def to_vllm(params: SamplingParams, special_token_ids: Mapping[str, int]) -> Any:
    """A ``vllm.SamplingParams`` for ``params`` that streams deltas (``RequestOutputKind.DELTA``)."""
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VllmSamplingParams(
        **vllm_sampling_kwargs(params, special_token_ids), output_kind=RequestOutputKind.DELTA, detokenize=True
    )
