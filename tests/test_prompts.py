"""Prompt formats, byte for byte as the Sakura API contract states them; glossaries; message validation."""

from __future__ import annotations

import logging

import pytest

from sakura_core.plugins import PluginRegistry
from sakura_core.prompts import (
    CHATML_STOP,
    GlossaryEntry,
    MessagesError,
    PromptFormat,
    format_glossary,
    render_baichuan,
    render_chatml,
    translation_prompt,
    validate_messages,
)

# The canonical strings, copied from the contract.
SYSTEM_V09_V10 = (
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

TEXT = "「おはようございます、先輩」\n彼女は小さく笑った。"
GLOSSARY_ENTRIES = [
    {"src": "先輩", "dst": "前辈", "info": "对学长的称呼"},
    {"src": "彼女", "dst": "她"},
]
GLOSSARY = "先輩->前辈 #对学长的称呼\n彼女->她"


def chatml(*turns: tuple[str, str]) -> str:
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns) + "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def formats() -> dict[str, PromptFormat]:
    return PluginRegistry.create(entry_points=False).prompt_formats()


def test_sakura_formats_are_registered(formats: dict[str, PromptFormat]) -> None:
    assert {"v0.8", "v0.9", "v0.10", "v1.0", "v1.5", "galtransl"} <= set(formats)
    for name in ("v0.9", "v0.10", "v1.0", "v1.5", "galtransl"):
        assert set(formats[name].stop) == {"<|im_end|>", "<|endoftext|>"}


def test_v09_prompt(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["v0.9"], TEXT, GLOSSARY_ENTRIES)
    assert prompt == (
        "<|im_start|>system\n"
        "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，并联系上下文正确使用人称代词，"
        "不擅自添加原文中没有的代词。<|im_end|>\n"
        "<|im_start|>user\n"
        "将下面的日文文本翻译成中文：「おはようございます、先輩」\n彼女は小さく笑った。<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_v10_prompt_with_glossary(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["v1.0"], TEXT, GLOSSARY_ENTRIES)
    assert prompt == chatml(
        ("system", SYSTEM_V09_V10),
        (
            "user",
            "根据以下术语表（可以为空）：\n先輩->前辈 #对学长的称呼\n彼女->她\n"
            "将下面的日文文本根据对应关系和备注翻译成中文：" + TEXT,
        ),
    )


def test_v10_prompt_without_glossary_is_the_v09_prompt(formats: dict[str, PromptFormat]) -> None:
    _, v10 = translation_prompt(formats["v1.0"], TEXT)
    _, v09 = translation_prompt(formats["v0.9"], TEXT)
    assert v10 == v09 == chatml(("system", SYSTEM_V09_V10), ("user", "将下面的日文文本翻译成中文：" + TEXT))


def test_v010_prompt_always_has_the_glossary(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["v0.10"], TEXT, GLOSSARY_ENTRIES)
    assert prompt == chatml(
        ("system", SYSTEM_V010),
        (
            "user",
            "根据以下术语表（可以为空）：\n"
            + GLOSSARY
            + "\n\n将下面的日文文本根据上述术语表的对应关系和备注翻译成中文："
            + TEXT,
        ),
    )
    _, empty = translation_prompt(formats["v0.10"], TEXT)
    assert empty == chatml(
        ("system", SYSTEM_V010),
        ("user", "根据以下术语表（可以为空）：\n\n\n将下面的日文文本根据上述术语表的对应关系和备注翻译成中文：" + TEXT),
    )


def test_galtransl_prompt(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["galtransl"], TEXT, GLOSSARY_ENTRIES)
    assert prompt == chatml(
        ("system", SYSTEM_GALTRANSL),
        (
            "user",
            "参考以下术语表（可为空，格式为src->dst #备注）：\n" + GLOSSARY + "\n"
            "根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n" + TEXT,
        ),
    )


def test_galtransl_prompt_with_history(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["galtransl"], TEXT, (), history="“早上好，前辈。”")
    assert prompt == chatml(
        ("system", SYSTEM_GALTRANSL),
        (
            "user",
            "历史翻译：“早上好，前辈。”\n"
            "参考以下术语表（可为空，格式为src->dst #备注）：\n\n"
            "根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n" + TEXT,
        ),
    )


@pytest.mark.parametrize(
    ("glossary", "history", "user"),
    [
        ((), None, "将下面的文本从日文翻译成简体中文：\n" + TEXT),
        (
            GLOSSARY_ENTRIES,
            None,
            "参考以下术语表（可为空，格式为src->dst #备注）\n" + GLOSSARY + "\n\n"
            "根据以上术语表的对应关系和备注，将下面的文本从日文翻译成简体中文：\n" + TEXT,
        ),
        (
            (),
            "“早上好，前辈。”",
            "历史翻译：“早上好，前辈。”\n\n结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n" + TEXT,
        ),
        (
            GLOSSARY_ENTRIES,
            "“早上好，前辈。”",
            "历史翻译：“早上好，前辈。”\n\n参考以下术语表（可为空，格式为src->dst #备注）\n" + GLOSSARY + "\n\n"
            "根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n" + TEXT,
        ),
    ],
)
def test_v15_messages(
    glossary: tuple[dict[str, str], ...], history: str | None, user: str, formats: dict[str, PromptFormat]
) -> None:
    messages, prompt = translation_prompt(formats["v1.5"], TEXT, glossary, history)
    assert messages == [{"role": "system", "content": SYSTEM_V15}, {"role": "user", "content": user}]
    assert prompt == chatml(("system", SYSTEM_V15), ("user", user)) + "<think>\n\n</think>\n\n"


def test_v08_prompt(formats: dict[str, PromptFormat]) -> None:
    _, prompt = translation_prompt(formats["v0.8"], TEXT, GLOSSARY_ENTRIES)
    assert prompt == "<reserved_106>将下面的日文文本翻译成中文：" + TEXT + "<reserved_107>"


def test_history_is_an_assistant_turn_before_the_request(formats: dict[str, PromptFormat]) -> None:
    messages, prompt = translation_prompt(formats["v1.0"], "次の文", history="上一句")
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert prompt == chatml(
        ("system", SYSTEM_V09_V10), ("assistant", "上一句"), ("user", "将下面的日文文本翻译成中文：次の文")
    )


# ------------------------------------------------------------------------------------------------------ glossary


def test_glossary_lines_with_and_without_notes() -> None:
    assert format_glossary(GLOSSARY_ENTRIES) == GLOSSARY
    assert format_glossary([GlossaryEntry(src="悠人", dst="悠人", info="人名")]) == "悠人->悠人 #人名"
    assert format_glossary([{"src": "a", "dst": "b", "info": ""}, {"src": "c", "dst": "d", "info": None}]) == (
        "a->b\nc->d"
    )
    assert format_glossary([]) == ""


def test_glossary_entry_needs_src_and_dst() -> None:
    with pytest.raises(ValueError, match="dst"):
        format_glossary([{"src": "先輩"}])


# ------------------------------------------------------------------------------------------ rendering messages


def test_chatml_renders_every_turn_in_any_order() -> None:
    # auto-novel and LunaTranslator: [system, assistant(previous text), user]
    messages = [
        {"role": "system", "content": "S"},
        {"role": "assistant", "content": "前文"},
        {"role": "user", "content": "将下面的日文文本翻译成中文：本文"},
    ]
    assert render_chatml(messages) == (
        "<|im_start|>system\nS<|im_end|>\n"
        "<|im_start|>assistant\n前文<|im_end|>\n"
        "<|im_start|>user\n将下面的日文文本翻译成中文：本文<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # GalTransl: [system, user, assistant, user]; and turns in an unusual order are rendered as given
    galtransl = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    assert render_chatml(galtransl) == chatml(("system", "S"), ("user", "u1"), ("assistant", "a1"), ("user", "u2"))
    odd = [{"role": "user", "content": "u"}, {"role": "user", "content": "v"}, {"role": "assistant", "content": "a"}]
    assert render_chatml(odd) == chatml(("user", "u"), ("user", "v"), ("assistant", "a"))


def test_chatml_renders_content_verbatim() -> None:
    content = "将下面的日文文本翻译成中文：\n「一行目」\\n1. 二行目 注释"
    assert render_chatml([{"role": "user", "content": content}]) == chatml(("user", content))


def test_content_parts_are_joined() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "前"}, {"type": "text", "text": "后"}]}
    assert render_chatml([message]) == chatml(("user", "前后"))


def test_v08_renders_turns_and_drops_system_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "assistant", "content": "前文"},
        {"role": "user", "content": "将下面的日文文本翻译成中文：本文"},
    ]
    with caplog.at_level(logging.WARNING, logger="sakura_core.prompts"):
        prompt = render_baichuan(messages)
    assert prompt == "<reserved_107>前文<reserved_106>将下面的日文文本翻译成中文：本文<reserved_107>"
    assert any("system" in record.getMessage() for record in caplog.records)


def test_chatml_stop_strings() -> None:
    assert CHATML_STOP == ("<|im_end|>", "<|endoftext|>")


# ---------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "x"}],
        [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}],
        [{"role": "user", "content": "u"}, {"role": "system", "content": "s"}],
    ],
)
def test_any_order_of_known_roles_is_valid(messages: list[dict[str, str]]) -> None:
    validate_messages(messages)


def test_an_empty_message_list_is_an_error() -> None:
    with pytest.raises(MessagesError, match="at least one message"):
        validate_messages([])


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([{"role": "tool", "content": "x"}], "messages\\[0\\].role must be one of system, user, assistant, got 'tool'"),
        ([{"role": "user", "content": "x"}, {"content": "y"}], "messages\\[1\\].role .* got None"),
        ([{"role": "user", "content": "x"}, "not a message"], "messages\\[1\\].role"),
    ],
)
def test_an_unknown_role_is_an_error(messages: list[object], message: str) -> None:
    with pytest.raises(MessagesError, match=message):
        validate_messages(messages)  # type: ignore[arg-type]
