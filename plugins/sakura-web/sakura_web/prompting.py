"""The prompt of a translation, rendered as ``sakura translate`` renders a chunk."""

from __future__ import annotations

from collections.abc import Sequence

from sakura_translate.glossary import Glossary
from sakura_translate.pipeline import Settings

from sakura_core.prompts import GlossaryEntry, PromptFormat, translation_prompt

#: The pipeline's defaults: full-width digits sent as ASCII ones, the answer's token budget.
PIPELINE_DEFAULTS = Settings()


def render_translation(
    prompt_format: PromptFormat, text: str, glossary: Sequence[GlossaryEntry], context: str | None
) -> tuple[list[dict[str, str]], str, list[GlossaryEntry]]:
    """The messages and raw prompt for ``text`` in ``prompt_format``, with only the glossary entries whose source
    occurs in the text (as the pipeline sends a chunk), and those entries."""
    sent = "\n".join(PIPELINE_DEFAULTS.sent_text(line) for line in text.split("\n"))
    entries = Glossary.of(glossary).for_text(text)
    messages, prompt = translation_prompt(prompt_format, sent, entries, context or None)
    return messages, prompt, entries


def default_max_tokens(text: str) -> int:
    """The token budget the pipeline gives a chunk of ``text``."""
    return PIPELINE_DEFAULTS.max_tokens_for(text)
