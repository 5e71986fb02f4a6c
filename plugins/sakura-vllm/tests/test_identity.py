"""Model identity from config.json's Sakura fields, the directory name and --model-version."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sakura_vllm.identity import llama_server_meta, model_info_from_config, quantization_method, sakura_fields
from sakura_vllm.tiny_model import TinyModelShape, build_tiny_model

from sakura_core.plugins import PluginRegistry
from sakura_core.types import ModelInfo

SMALL = TinyModelShape(hidden_size=64, num_attention_heads=1, intermediate_size=64, vocab_target=400)


def config_of(path: Path) -> dict:
    return json.loads((path / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def anonymous_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose config.json has no sakura_* fields, in a directory with no version in its name."""
    return build_tiny_model(
        tmp_path_factory.mktemp("anon") / "random-qwen2", sakura_name=None, sakura_version=None, sakura_quant=None,
        shape=SMALL,
    )  # fmt: skip


def test_config_json_fields_win_over_the_name(tmp_path: Path) -> None:
    path = build_tiny_model(
        tmp_path / "Sakura-7B-Qwen2.5-GPTQ", sakura_name="sakura-7b-qwen2.5", sakura_version="1.0",
        sakura_quant="gptq-int4", shape=SMALL,
    )  # fmt: skip
    info = model_info_from_config(str(path), config_of(path), context_length=2048)
    assert (info.name, info.version, info.quant) == ("sakura-7b-qwen2.5", "1.0", "gptq-int4")
    assert info.id == "Sakura-7B-Qwen2.5-GPTQ-v1.0"  # clients find the version in the id
    assert served_format(info) == "v1.0"
    assert info.context_length == 2048


def test_model_version_option_wins_over_config_json(tmp_path: Path) -> None:
    path = build_tiny_model(tmp_path / "tiny", sakura_version="1.0", shape=SMALL)
    info = model_info_from_config(str(path), config_of(path), context_length=512, model_version="0.10")
    assert info.version == "0.10"
    assert served_format(info) == "v0.10"
    assert info.id == "tiny-v0.10"


def test_the_repository_name_when_config_json_says_nothing(anonymous_model: Path) -> None:
    config = config_of(anonymous_model)
    assert sakura_fields(config) == {}
    info = model_info_from_config(
        "SakuraLLM/Sakura-14B-Qwen2beta-v0.9.2-GPTQ-Int4", config, context_length=4096, quantization="gptq"
    )
    assert (info.name, info.version, info.quant) == ("Sakura-14B-Qwen2beta", "0.9.2", "gptq")
    assert info.id == "Sakura-14B-Qwen2beta-v0.9.2-GPTQ-Int4"
    assert served_format(info) == "v0.9"


def test_a_model_without_identity_serves_with_a_warning(
    anonymous_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        info = model_info_from_config(str(anonymous_model), config_of(anonymous_model), context_length=512)
    assert info.version is None
    assert info.id == "random-qwen2"
    assert served_format(info) == "v1.0"
    assert any("--model-version" in record.getMessage() for record in caplog.records)


def test_quantisation_from_the_config() -> None:
    assert quantization_method({"quantization_config": {"quant_method": "AWQ", "bits": 4}}) == "awq"
    assert quantization_method({}) is None
    info = model_info_from_config(
        "org/Sakura-32B-Qwen2beta-v0.10pre1", {"quantization_config": {"quant_method": "gptq"}}, context_length=1
    )
    assert info.quant == "gptq"


def test_meta_holds_only_what_the_config_states(anonymous_model: Path) -> None:
    assert llama_server_meta(config_of(anonymous_model)) == {"n_vocab": 400, "n_ctx_train": 2048, "n_embd": 64}
    assert llama_server_meta({}) is None


def served_format(info: ModelInfo | None) -> str:
    """The prompt format the core serves a model of this identity with (engines report identity only)."""
    assert info is not None
    return PluginRegistry.create(entry_points=False).prompt_format_for(info).name
