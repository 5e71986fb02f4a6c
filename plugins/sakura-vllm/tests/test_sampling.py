"""Sakura's sampling parameters mapped onto vLLM's."""

from __future__ import annotations

from sakura_vllm.sampling import split_stop, to_vllm, vllm_sampling_kwargs

from sakura_core.types import SamplingParams

SPECIAL = {"<|im_end|>": 639, "<|endoftext|>": 637, "<|im_start|>": 638}


def test_special_token_stop_strings_become_stop_token_ids() -> None:
    strings, ids = split_stop(["<|im_end|>", "。", "", "<|endoftext|>", "。", "<|im_end|>"], SPECIAL)
    assert strings == ["。"]
    assert ids == [639, 637]


def test_sampled_parameters_map_one_to_one() -> None:
    params = SamplingParams(
        max_tokens=77,
        temperature=0.7,
        top_p=0.9,
        top_k=20,
        repetition_penalty=1.1,
        frequency_penalty=0.2,
        presence_penalty=-0.5,
        seed=42,
        stop=["\n\n", "<|im_end|>"],
    )
    kwargs = vllm_sampling_kwargs(params, SPECIAL)
    assert kwargs == {
        "n": 1,
        "max_tokens": 77,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": -0.5,
        "seed": 42,
        "stop": ["\n\n"],
        "stop_token_ids": [639],
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
    }


def test_greedy_is_temperature_zero() -> None:
    for params in (SamplingParams(do_sample=False, temperature=0.9), SamplingParams(temperature=0.0)):
        kwargs = vllm_sampling_kwargs(params, SPECIAL)
        assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.0, 1.0, 0)
    assert vllm_sampling_kwargs(SamplingParams(seed=-1), SPECIAL)["seed"] is None  # random


def test_vllm_accepts_the_mapping_and_streams_deltas() -> None:
    from vllm.sampling_params import RequestOutputKind, SamplingType

    params = to_vllm(SamplingParams(max_tokens=5, top_k=0, seed=1, stop=["<|im_end|>", "x"]), SPECIAL)
    assert params.output_kind == RequestOutputKind.DELTA
    assert params.sampling_type == SamplingType.RANDOM_SEED
    assert params.stop == ["x"] and params.stop_token_ids == [639]
    assert params.max_tokens == 5 and params.skip_special_tokens
    assert to_vllm(SamplingParams(do_sample=False), SPECIAL).sampling_type == SamplingType.GREEDY
