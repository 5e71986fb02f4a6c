"""One llama.cpp sampler chain per sequence, built from the request's SamplingParams."""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from sakura_core.types import SamplingParams


def has_penalties(params: SamplingParams) -> bool:
    """True when the request asks for a repetition, frequency or presence penalty."""
    return params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0 or params.presence_penalty != 0.0


def build_sampler(lib: ModuleType, params: SamplingParams, *, n_vocab: int, repeat_last_n: int) -> Any:
    """A sampler chain: penalties, then greedy, or top-k → top-p → temperature → a seeded random draw.

    The chain belongs to the caller (free it with ``llama_sampler_free``). ``repeat_last_n`` is how many
    recent tokens the penalties look at; feed the prompt with ``llama_sampler_accept`` so that they see it, as
    llama-server does.
    """
    chain_params = lib.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = lib.llama_sampler_chain_init(chain_params)
    if has_penalties(params):
        lib.llama_sampler_chain_add(
            chain,
            lib.llama_sampler_init_penalties(
                n_vocab,
                repeat_last_n,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ),
        )
    if params.greedy:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else random.randrange(2**32 - 1)
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain
