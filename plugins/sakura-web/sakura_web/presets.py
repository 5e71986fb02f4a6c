"""Sakura's recommended sampling settings, offered by name to the page and the API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sakura_core.degeneration import DEGENERATION_RETRY_PENALTIES


class PresetSampling(BaseModel):
    """The sampling values a preset sets."""

    temperature: float
    top_p: float
    frequency_penalty: float


class Preset(BaseModel):
    """A named set of sampling values, labelled for people in Chinese and English."""

    id: str
    label_zh: str
    label_en: str
    sampling: PresetSampling = Field(description="The values it sets; a request's own values override them.")


#: Sakura's recommendation (the model card's temperature 0.1, top_p 0.3, no penalty), then the setting the
#: pipeline retries a degenerated answer with.
PRESETS: tuple[Preset, ...] = (
    Preset(
        id="sakura",
        label_zh="Sakura 推荐",
        label_en="Sakura recommended",
        sampling=PresetSampling(temperature=0.1, top_p=0.3, frequency_penalty=0.0),
    ),
    Preset(
        id="anti-degeneration",
        label_zh="防退化（重复时使用）",
        label_en="Anti-degeneration (for repeating output)",
        sampling=PresetSampling(temperature=0.1, top_p=0.3, frequency_penalty=DEGENERATION_RETRY_PENALTIES[-1]),
    ),
)
DEFAULT_PRESET = PRESETS[0].id


def find_preset(preset_id: str | None) -> Preset | None:
    """The preset called ``preset_id`` (the default one for None); None when there is none by that name."""
    wanted = preset_id or DEFAULT_PRESET
    return next((preset for preset in PRESETS if preset.id == wanted), None)
