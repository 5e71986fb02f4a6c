"""The start-up self-check: a genuine Sakura model translates やる気マンゴスキン as 干劲Mangoskin."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from sakura_core.loaded_model import LoadedModel
from sakura_core.prompts import translation_prompt
from sakura_core.types import SamplingParams

logger = logging.getLogger(__name__)

SELF_CHECK_INPUT = "やる気マンゴスキン"
SELF_CHECK_EXPECTED = "干劲Mangoskin"
#: Tokens the self-check may generate: the expected answer is far shorter.
SELF_CHECK_MAX_TOKENS = 20


class SelfCheck(BaseModel):
    """The outcome of the start-up self-check."""

    output: str
    passed: bool


async def self_check(model: LoadedModel) -> SelfCheck:
    """Translate やる気マンゴスキン greedily (20 tokens) through the model's generation path.

    A mismatch is logged as a warning, never an error: fine-tunes and test models answer differently.
    """
    _, prompt = translation_prompt(model.prompt_format, SELF_CHECK_INPUT)
    request = await model.prepare(prompt, SamplingParams(do_sample=False), max_tokens=SELF_CHECK_MAX_TOKENS)
    output = (await model.complete(request)).text.strip()
    passed = output == SELF_CHECK_EXPECTED
    if passed:
        logger.info("self-check passed: %s → %s", SELF_CHECK_INPUT, output)
    else:
        logger.warning(
            "self-check: %s translated to %r, a genuine Sakura model answers %r; check the model and --model-version",
            SELF_CHECK_INPUT,
            output,
            SELF_CHECK_EXPECTED,
        )
    return SelfCheck(output=output, passed=passed)
