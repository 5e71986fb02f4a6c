"""Model identity from names: name, version and quant; the prompt format chosen; the served id."""

from __future__ import annotations

import logging

import pytest

from sakura_core.identity import make_model_info, model_base_name, parse_model_identity
from sakura_core.plugins import PluginRegistry
from sakura_core.types import ModelInfo

# (what the user passes to --model, base name, name, version, quant, prompt format)
NAMES = [
    (
        "sakura-7b-qwen2.5-v1.0-iq4xs.gguf",
        "sakura-7b-qwen2.5-v1.0-iq4xs",
        "sakura-7b-qwen2.5",
        "1.0",
        "iq4xs",
        "v1.0",
    ),
    (
        "sakura-14b-qwen2beta-v0.9.2-iq4xs.gguf",
        "sakura-14b-qwen2beta-v0.9.2-iq4xs",
        "sakura-14b-qwen2beta",
        "0.9.2",
        "iq4xs",
        "v0.9",
    ),
    (
        "sakura-13b-lnovel-v0.9b-Q4_K_M.gguf",
        "sakura-13b-lnovel-v0.9b-Q4_K_M",
        "sakura-13b-lnovel",
        "0.9b",
        "Q4_K_M",
        "v0.9",
    ),
    ("GalTransl-7B-v2.6-IQ4_XS.gguf", "GalTransl-7B-v2.6-IQ4_XS", "GalTransl-7B", "2.6", "IQ4_XS", "galtransl"),
    (
        "onekuma/sakura-13b-lnovel-v0.9b-q2_k",
        "sakura-13b-lnovel-v0.9b-q2_k",
        "sakura-13b-lnovel",
        "0.9b",
        "q2_k",
        "v0.9",
    ),
    (
        "onekuma/sakura-13b-lnovel-v0.9b-q2_k:latest",
        "sakura-13b-lnovel-v0.9b-q2_k",
        "sakura-13b-lnovel",
        "0.9b",
        "q2_k",
        "v0.9",
    ),
    ("SakuraLLM/Sakura-13B-LNovel-v0.9", "Sakura-13B-LNovel-v0.9", "Sakura-13B-LNovel", "0.9", None, "v0.9"),
    (
        "sakura-14b-qwen2beta-v0.10pre1-iq4xs.gguf",
        "sakura-14b-qwen2beta-v0.10pre1-iq4xs",
        "sakura-14b-qwen2beta",
        "0.10pre1",
        "iq4xs",
        "v0.10",
    ),
    (
        "SakuraLLM/Sakura-14B-Qwen2beta-v0.10pre1-GGUF",
        "Sakura-14B-Qwen2beta-v0.10pre1-GGUF",
        "Sakura-14B-Qwen2beta",
        "0.10pre1",
        None,
        "v0.10",
    ),
    (
        "sakura-13b-lnovel-v0.8-Q4_K_M.gguf",
        "sakura-13b-lnovel-v0.8-Q4_K_M",
        "sakura-13b-lnovel",
        "0.8",
        "Q4_K_M",
        "v0.8",
    ),
    (
        "SakuraLLM/Sakura-13B-LNovel-v0.8-4bit",
        "Sakura-13B-LNovel-v0.8-4bit",
        "Sakura-13B-LNovel",
        "0.8",
        "4bit",
        "v0.8",
    ),
    (
        "SakuraLLM/Sakura-14B-Qwen2.5-v1.0-GPTQ",
        "Sakura-14B-Qwen2.5-v1.0-GPTQ",
        "Sakura-14B-Qwen2.5",
        "1.0",
        "gptq",
        "v1.0",
    ),
    (
        "sakura-14b-qwen3-v1.5-q4km.gguf",
        "sakura-14b-qwen3-v1.5-q4km",
        "sakura-14b-qwen3",
        "1.5",
        "q4km",
        "v1.5",
    ),
    ("SakuraLLM/Sakura-14B-Qwen3-v1.5", "Sakura-14B-Qwen3-v1.5", "Sakura-14B-Qwen3", "1.5", None, "v1.5"),
]
#: The substrings auto-novel looks for in the model id to tell the version (it knows no v1.5: it sends v1.0's
#: prompt, which a v1.5 model reads too).
VERSION_TOKENS = {"v0.8": "0.8", "v0.9": "0.9", "v0.10": "0.10", "v1.0": "1.0"}
#: LunaTranslator's: "sakura" plus, for each version, this (lower case).
LUNA_TOKENS = {"v1.5": "qwen3-v1.5", "v1.0": "qwen2.5-v1.0", "v0.10": "v0.10", "v0.9": "v0.9"}


#: Sakura's own prompt formats, as a server without plugins chooses among them.
BUILTIN = PluginRegistry.create(entry_points=False)


def served(info: ModelInfo) -> str:
    """The prompt format the core serves a model of this identity with."""
    return BUILTIN.prompt_format_for(info).name


def prompt_format_for(name: str, version: str | None) -> str:
    """The prompt format for a model name and version."""
    return served(ModelInfo(id=name, name=name, version=version, path=name, context_length=1))


@pytest.mark.parametrize(("model", "base", "name", "version", "quant", "prompt_format"), NAMES)
def test_identity_from_the_name(
    model: str, base: str, name: str, version: str, quant: str | None, prompt_format: str
) -> None:
    identity = parse_model_identity(model)
    assert (identity.base_name, identity.name, identity.version, identity.quant) == (base, name, version, quant)
    assert prompt_format_for(identity.name, identity.version) == prompt_format


@pytest.mark.parametrize(("model", "base", "name", "version", "quant", "prompt_format"), NAMES)
def test_model_info_id_is_the_base_name_and_contains_only_its_version(
    model: str, base: str, name: str, version: str, quant: str | None, prompt_format: str
) -> None:
    info = make_model_info(model, context_length=2048)
    assert (info.id, info.name, info.version, info.quant) == (base, name, version, quant)
    assert (served(info), info.path, info.context_length, info.meta) == (prompt_format, model, 2048, None)
    if prompt_format in VERSION_TOKENS:
        assert VERSION_TOKENS[prompt_format] in info.id
    others = [token for fmt, token in VERSION_TOKENS.items() if fmt != prompt_format]
    assert not [token for token in others if token in info.id]
    if prompt_format in LUNA_TOKENS and "sakura" in info.id.lower() and "qwen" in info.id.lower():
        assert LUNA_TOKENS[prompt_format] in info.id.lower()


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("./models/sakura-7b-qwen2.5-v1.0-iq4xs.gguf", "sakura-7b-qwen2.5-v1.0-iq4xs"),
        ("C:\\models\\sakura-7b-qwen2.5-v1.0-iq4xs.GGUF", "sakura-7b-qwen2.5-v1.0-iq4xs"),
        ("models/Sakura-14B-Qwen2.5-v1.0/", "Sakura-14B-Qwen2.5-v1.0"),
        ("sakura:14b-v1.0", "sakura-14b-v1.0"),
        ("weights.safetensors", "weights"),
    ],
)
def test_base_name_of_paths_directories_and_tags(model: str, base: str) -> None:
    assert model_base_name(model) == base


@pytest.mark.parametrize(
    ("name", "version", "prompt_format"),
    [
        ("sakura", "0.8", "v0.8"),
        ("sakura", "v0.8", "v0.8"),
        ("sakura", "0.9", "v0.9"),
        ("sakura", "0.9.1", "v0.9"),
        ("sakura", "0.9b", "v0.9"),
        ("sakura", "0.10", "v0.10"),
        ("sakura", "0.10pre1", "v0.10"),
        ("sakura", "0.11", "v0.10"),
        ("sakura", "1.0", "v1.0"),
        ("sakura", "1.1", "v1.0"),
        ("sakura", "1.5", "v1.5"),
        ("sakura", "v1.5", "v1.5"),
        ("sakura", "1.6", "v1.5"),
        ("sakura-14b-qwen3", "1.5", "v1.5"),
        ("sakura", "galtransl", "galtransl"),
        ("sakura", "GalTransl-v3", "galtransl"),
        ("GalTransl-7B", "2.6", "galtransl"),
        ("GalTransl-7B", None, "galtransl"),
        ("some-model", None, "v1.0"),
    ],
)
def test_prompt_format_choice(name: str, version: str | None, prompt_format: str) -> None:
    assert prompt_format_for(name, version) == prompt_format


def test_model_version_overrides_the_name() -> None:
    info = make_model_info("sakura-13b-lnovel-v0.9b-Q4_K_M.gguf", context_length=4096, model_version="0.10")
    assert (info.version, served(info)) == ("0.10", "v0.10")
    assert info.id == "sakura-13b-lnovel-v0.10-Q4_K_M"
    assert "0.9" not in info.id
    galtransl = make_model_info("sakura-7b-qwen2.5-v1.0-iq4xs.gguf", context_length=4096, model_version="galtransl")
    assert served(galtransl) == "galtransl"


def test_model_version_overrides_the_models_metadata_which_overrides_the_name() -> None:
    from_metadata = make_model_info("checkpoint", context_length=4096, version="0.9", name="Sakura-14B", quant="gptq")
    assert (from_metadata.name, from_metadata.version, from_metadata.quant) == ("Sakura-14B", "0.9", "gptq")
    assert served(from_metadata) == "v0.9"
    overridden = make_model_info("checkpoint", context_length=4096, version="0.9", model_version="0.8")
    assert (overridden.version, served(overridden)) == ("0.8", "v0.8")


def test_a_version_missing_from_the_name_is_appended_to_the_id() -> None:
    info = make_model_info("my-model.gguf", context_length=4096, model_version="0.9")
    assert info.id == "my-model-v0.9"
    assert make_model_info("my-model.gguf", context_length=4096, model_version="v1.0").id == "my-model-v1.0"
    assert make_model_info("sakura-v1.0.gguf", context_length=4096, model_version="1.0").id == "sakura-v1.0"


def test_an_unknown_version_warns_and_uses_chatml(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sakura_core.identity"):
        info = make_model_info("./models/my-model.gguf", context_length=4096)
    assert (info.id, info.version, served(info)) == ("my-model", None, "v1.0")
    [warning] = caplog.records
    assert "--model-version" in warning.getMessage()


@pytest.mark.parametrize(
    ("general_name", "name", "version", "quant"),
    [
        ("Sakura 14B Qwen3 v1.5", "Sakura 14B Qwen3", "1.5", None),
        ("Sakura 7B Qwen2.5 v1.0 Q4_K_M", "Sakura 7B Qwen2.5", "1.0", "Q4_K_M"),
        ("Sakura-7B-Qwen2.5-v1.0", "Sakura-7B-Qwen2.5", "1.0", None),
        ("Qwen3 14B", "Qwen3 14B", None, None),
    ],
)
def test_identity_from_a_gguf_general_name(
    general_name: str, name: str, version: str | None, quant: str | None
) -> None:
    """A GGUF's ``general.name`` is often written with spaces."""
    identity = parse_model_identity(general_name)
    assert (identity.name, identity.version, identity.quant) == (name, version, quant)


def test_an_unknown_version_stays_out_of_the_id() -> None:
    """Never claim a version the model may not have: the id is the base name as it is."""
    info = make_model_info("SmolLM2-135M-Instruct.Q4_1.gguf", context_length=4096)
    assert (info.id, info.version, served(info)) == ("SmolLM2-135M-Instruct.Q4_1", None, "v1.0")
    assert not [token for token in VERSION_TOKENS.values() if token in info.id]


def test_v15_from_metadata_and_from_the_option() -> None:
    """vLLM's config.json ``sakura_version``, or --model-version, chooses v1.5 for a name that says nothing."""
    from_config = make_model_info("checkpoint", context_length=4096, name="Sakura-14B-Qwen3", version="1.5")
    assert (from_config.id, served(from_config)) == ("checkpoint-v1.5", "v1.5")
    from_option = make_model_info("sakura-14b-qwen3-v1.5-q4km.gguf", context_length=4096, model_version="1.0")
    assert (from_option.id, served(from_option)) == ("sakura-14b-qwen3-v1.0-q4km", "v1.0")


def test_meta_is_passed_through_untouched() -> None:
    meta = {"vocab_type": 2, "n_vocab": 152064, "n_ctx_train": 32768, "n_embd": 5120, "n_params": 1, "size": 2}
    info = make_model_info("sakura-7b-qwen2.5-v1.0-iq4xs.gguf", context_length=2048, meta=meta)
    assert info.meta == meta


def test_the_models_metadata_name_gives_the_version_the_file_name_lacks() -> None:
    info = make_model_info(
        "model-q4.gguf", context_length=4096, metadata_name="Sakura 14B Qwen3 v1.5", metadata_quant="Q4_K_M"
    )
    assert (info.name, info.version, served(info)) == ("Sakura 14B Qwen3", "1.5", "v1.5")
    assert info.id == "model-q4-v1.5"
    assert info.quant == "Q4_K_M"
    named = make_model_info(
        "sakura-7b-v0.9-Q8_0.gguf", context_length=4096, metadata_name="Other v1.0", metadata_quant="F16"
    )
    assert (named.name, named.version, named.quant) == ("sakura-7b", "0.9", "Q8_0")
    unversioned = make_model_info("model.gguf", context_length=4096, metadata_name="Qwen2 Tiny", path="org/repo")
    assert (unversioned.name, unversioned.version, unversioned.path) == ("model", None, "org/repo")
