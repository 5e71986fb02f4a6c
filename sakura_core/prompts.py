"""Sakura prompt formats: chat messages → raw prompt, and the canonical messages of a translation request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from sakura_core.types import ModelInfo
from sakura_core.versions import is_galtransl, version_between

logger = logging.getLogger(__name__)

Message = Mapping[str, Any]
ROLES = ("system", "user", "assistant")


class GlossaryEntry(BaseModel):
    """One 术语表 (GPT dict) entry: source term, translation, optional note."""

    src: str
    dst: str
    info: str | None = None


def format_glossary(entries: Sequence[GlossaryEntry | Mapping[str, Any]]) -> str:
    """Glossary lines ``src->dst #info`` (or ``src->dst`` without a note), joined by newlines."""
    lines = []
    for raw in entries:
        entry = raw if isinstance(raw, GlossaryEntry) else GlossaryEntry.model_validate(raw)
        line = f"{entry.src}->{entry.dst}"
        if entry.info:
            line += f" #{entry.info}"
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class PromptFormat:
    """How one family of models reads a conversation.

    ``render`` turns OpenAI-style messages into the raw prompt, ending where the assistant's answer begins.
    ``stop`` are strings that end a generation. ``translation_messages(text, glossary, history)`` builds the
    canonical messages of a translation request for this model version. ``strip_think`` says the model may open
    its reply with a ``<think>…</think>`` block (Qwen3): the core drops that block from every reply.
    ``matches(model)`` says whether this is the format for a model, from its identity (``ModelInfo``'s name,
    version and quant): the core serves a model with the last registered format that matches it (see
    ``sakura_core.format_choice``). Without it, the format is used only when asked for by name.
    """

    name: str
    render: Callable[[Sequence[Message]], str]
    translation_messages: Callable[[str, str, str | None], list[dict[str, str]]]
    stop: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    strip_think: bool = False
    matches: Callable[[ModelInfo], bool] | None = None


def message_text(message: Message) -> str:
    """A message's content as text (OpenAI content parts of type text are joined)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))


CHATML_GENERATION_PROMPT = "<|im_start|>assistant\n"


def chatml_turn(role: str, content: str) -> str:
    """One ChatML message."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def render_chatml(messages: Sequence[Message]) -> str:
    """ChatML, as Qwen-based Sakura (v0.9, v0.10, v1.0) and GalTransl models read it."""
    return "".join(chatml_turn(m["role"], message_text(m)) for m in messages) + CHATML_GENERATION_PROMPT


#: What Qwen3's chat template puts after the generation prompt when thinking is off (``enable_thinking=False``):
#: an empty reasoning block, so the model answers at once.
QWEN3_NO_THINKING = "<think>\n\n</think>\n\n"


def _qwen3_last_query(messages: Sequence[Message]) -> int:
    """The index of the last user message that is not a tool response; the last index when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        content = message_text(messages[index])
        tool_response = content.startswith("<tool_response>") and content.endswith("</tool_response>")
        if messages[index]["role"] == "user" and not tool_response:
            return index
    return len(messages) - 1


def render_qwen3(messages: Sequence[Message]) -> str:
    """ChatML as Qwen3's own chat template renders it with thinking off, as Sakura v1.5 reads it.

    Like the template, an assistant turn keeps only the text after a ``</think>`` it contains, and the assistant
    turns after the last user message carry their reasoning block (an empty one for the last turn); the prompt
    ends with the generation prompt and an empty reasoning block.
    """
    last_query = _qwen3_last_query(messages)
    turns = []
    for index, message in enumerate(messages):
        role, content = message["role"], message_text(message)
        if role == "assistant":
            reasoning = ""
            if "</think>" in content:
                reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
                content = content.split("</think>")[-1].lstrip("\n")
            if index > last_query and (index == len(messages) - 1 or reasoning):
                content = "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + content.lstrip("\n")
        turns.append(chatml_turn(role, content))
    return "".join(turns) + CHATML_GENERATION_PROMPT + QWEN3_NO_THINKING


def render_baichuan(messages: Sequence[Message]) -> str:
    """Baichuan2's reserved tokens, as Sakura v0.8 reads them. System messages have no place and are dropped."""
    parts = []
    for message in messages:
        role = message["role"]
        if role == "system":
            logger.warning("Sakura v0.8 has no system prompt: a system message was dropped")
        elif role == "user":
            parts.append(f"<reserved_106>{message_text(message)}")
        else:
            parts.append(f"<reserved_107>{message_text(message)}")
    return "".join(parts) + "<reserved_107>"


SYSTEM_V09 = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"
)
SYSTEM_V010 = (
    "你是一个轻小说翻译模型，可以流畅通顺地使用给定的术语表以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，注意不要混淆使役态和被动态的主语和宾语，不要擅自添加原文中没有的代词，"
    "也不要擅自增加或减少换行。"
)
SYSTEM_GALTRANSL = (
    "你是一个视觉小说翻译模型，可以通顺地使用给定的术语表以指定的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，注意不要混淆使役态和被动态的主语和宾语，不要擅自添加原文中没有的特殊符号，"
    "也不要擅自增加或减少换行。"
)
SYSTEM_V15 = (
    "你是一个日本二次元领域的日语翻译模型，可以流畅通顺地以日本轻小说/漫画/Galgame的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"
)
USER_V09 = "将下面的日文文本翻译成中文："


def _history(history: str | None) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": history}] if history else []


def translation_messages_v08(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """v0.8: a single user turn, no system prompt, no glossary."""
    return [*_history(history), {"role": "user", "content": USER_V09 + text}]


def translation_messages_v09(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """v0.9: the light-novel system prompt and a plain instruction (no glossary support)."""
    return [
        {"role": "system", "content": SYSTEM_V09},
        *_history(history),
        {"role": "user", "content": USER_V09 + text},
    ]


def translation_messages_v10(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """v1.0: as v0.9, with the glossary instruction when the glossary is not empty."""
    if not glossary:
        return translation_messages_v09(text, glossary, history)
    user = f"根据以下术语表（可以为空）：\n{glossary}\n将下面的日文文本根据对应关系和备注翻译成中文：{text}"
    return [{"role": "system", "content": SYSTEM_V09}, *_history(history), {"role": "user", "content": user}]


def translation_messages_v010(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """v0.10: its own system prompt, the glossary always present (possibly empty)."""
    user = (
        f"根据以下术语表（可以为空）：\n{glossary}\n\n将下面的日文文本根据上述术语表的对应关系和备注翻译成中文：{text}"
    )
    return [{"role": "system", "content": SYSTEM_V010}, *_history(history), {"role": "user", "content": user}]


def translation_messages_galtransl(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """GalTransl v3: visual-novel system prompt; previous translation inlined into the user turn."""
    user = f"历史翻译：{history}\n" if history else ""
    user += (
        f"参考以下术语表（可为空，格式为src->dst #备注）：\n{glossary}\n"
        f"根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n{text}"
    )
    return [{"role": "system", "content": SYSTEM_GALTRANSL}, {"role": "user", "content": user}]


def translation_messages_v15(text: str, glossary: str, history: str | None) -> list[dict[str, str]]:
    """v1.5: its own system prompt; the previous translation, the glossary and the text in one user turn.

    The user turn is GalTransl's structure as LunaTranslator sends it to v1.5: each part only when present.
    """
    user = f"历史翻译：{history}\n\n" if history else ""
    if glossary:
        user += f"参考以下术语表（可为空，格式为src->dst #备注）\n{glossary}\n\n根据以上术语表的对应关系和备注，"
    if history:
        user += "结合历史剧情和上下文，"
    user += f"将下面的文本从日文翻译成简体中文：\n{text}"
    return [{"role": "system", "content": SYSTEM_V15}, {"role": "user", "content": user}]


CHATML_STOP = ("<|im_end|>", "<|endoftext|>")

SAKURA_FORMATS = (
    PromptFormat(
        "v0.8",
        render_baichuan,
        translation_messages_v08,
        ("</s>",),
        "Sakura v0.8 (Baichuan2)",
        matches=version_between((0, 8), (0, 9)),
    ),
    PromptFormat(
        "v0.9",
        render_chatml,
        translation_messages_v09,
        CHATML_STOP,
        "Sakura v0.9 (ChatML)",
        matches=version_between((0, 9), (0, 10)),
    ),
    PromptFormat(
        "v0.10",
        render_chatml,
        translation_messages_v010,
        CHATML_STOP,
        "Sakura v0.10 (ChatML)",
        matches=version_between((0, 10), (1, 0)),
    ),
    PromptFormat(
        "v1.0",
        render_chatml,
        translation_messages_v10,
        CHATML_STOP,
        "Sakura v1.0 (ChatML)",
        matches=version_between((1, 0), (1, 5)),
    ),
    PromptFormat(
        "v1.5",
        render_qwen3,
        translation_messages_v15,
        CHATML_STOP,
        "Sakura v1.5 (Qwen3 ChatML, thinking off)",
        strip_think=True,
        matches=version_between((1, 5), (2, 0)),
    ),
    PromptFormat(
        "galtransl",
        render_chatml,
        translation_messages_galtransl,
        CHATML_STOP,
        "GalTransl (ChatML)",
        matches=is_galtransl,
    ),
)


def translation_prompt(
    prompt_format: PromptFormat,
    text: str,
    glossary: Sequence[GlossaryEntry | Mapping[str, Any]] = (),
    history: str | None = None,
) -> tuple[list[dict[str, str]], str]:
    """The canonical messages for translating ``text`` with this format, and the raw prompt they render to."""
    messages = prompt_format.translation_messages(text, format_glossary(glossary), history)
    return messages, prompt_format.render(messages)


class MessagesError(ValueError):
    """Chat messages that cannot be rendered: empty, or with an unknown role. The server answers 400."""


def validate_messages(messages: Sequence[Message]) -> None:
    """Raise MessagesError for an empty list or an unknown role. Any order of turns is accepted."""
    if not messages:
        raise MessagesError("'messages' must contain at least one message")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ROLES:
            raise MessagesError(f"messages[{index}].role must be one of {', '.join(ROLES)}, got {role!r}")
