"""Sakura v1.5 (Qwen3): the prompt is byte for byte what Qwen3's own chat template renders with thinking off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import CHATML_STOP, PromptFormat, translation_prompt

TEMPLATE = Path(__file__).parent / "fixtures" / "chat_templates" / "qwen3.jinja"
SYSTEM = "你是一个日本二次元领域的日语翻译模型，可以流畅通顺地以日本轻小说/漫画/Galgame的风格将日文翻译成简体中文，并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"  # noqa: E501
TEXT = "「おはようございます、先輩」\n彼女は小さく笑った。"


def qwen3_template(messages: list[dict[str, Any]]) -> str:
    """The template rendered as Transformers' apply_chat_template does, with the generation prompt, thinking off."""
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(messages=messages, add_generation_prompt=True, enable_thinking=False)


@pytest.fixture(scope="module")
def v15() -> PromptFormat:
    return PluginRegistry.create(entry_points=False).prompt_format("v1.5")


CONVERSATIONS = {
    "system and user": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "将下面的文本从日文翻译成简体中文：\n" + TEXT},
    ],
    # auto-novel and LunaTranslator: the previous translation as an assistant turn before the user turn
    "history before the user": [
        {"role": "system", "content": SYSTEM},
        {"role": "assistant", "content": "「早上好，前辈」"},
        {"role": "user", "content": TEXT},
    ],
    # GalTransl: earlier turns of the same conversation
    "history turns": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "やる気"},
        {"role": "assistant", "content": "干劲"},
        {"role": "user", "content": TEXT},
    ],
    "a reply that began with reasoning": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "やる気"},
        {"role": "assistant", "content": "<think>\n想一想\n</think>\n\n干劲"},
        {"role": "user", "content": TEXT},
    ],
    "the answer's beginning given (prefill)": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TEXT},
        {"role": "assistant", "content": "「早上好"},
    ],
    "turns after the last user turn": [
        {"role": "user", "content": TEXT},
        {"role": "assistant", "content": "<think>\n先想\n</think>\n「早上好」"},
        {"role": "assistant", "content": "她"},
    ],
    "no system, a system later": [
        {"role": "user", "content": TEXT},
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n前後の空白 \n"},
    ],
}


@pytest.mark.parametrize("messages", CONVERSATIONS.values(), ids=CONVERSATIONS.keys())
def test_v15_renders_as_qwen3s_own_template_with_thinking_off(
    messages: list[dict[str, Any]], v15: PromptFormat
) -> None:
    assert v15.render(messages) == qwen3_template(messages)


@pytest.mark.parametrize(
    ("glossary", "history"),
    [
        ([], None),
        ([{"src": "先輩", "dst": "前辈", "info": "对学长的称呼"}], None),
        ([], "「早上好」"),
        ([{"src": "彼女", "dst": "她"}], "「早上好」"),
    ],
)
def test_v15_translation_prompts_render_as_the_template(
    glossary: list[dict[str, str]], history: str | None, v15: PromptFormat
) -> None:
    messages, prompt = translation_prompt(v15, TEXT, glossary, history)
    assert prompt == qwen3_template(messages)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_v15_is_registered_with_chatml_stops_and_drops_reasoning(v15: PromptFormat) -> None:
    assert (v15.name, v15.stop, v15.strip_think) == ("v1.5", CHATML_STOP, True)
    others = PluginRegistry.create(entry_points=False).prompt_formats()
    assert not [name for name, prompt_format in others.items() if prompt_format.strip_think and name != "v1.5"]
