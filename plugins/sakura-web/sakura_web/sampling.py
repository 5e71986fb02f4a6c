"""The sampling a translation asks for: a preset's values, overridden by the request's own."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sakura_core.server.http.errors import APIError, invalid_request
from sakura_core.types import SamplingParams
from sakura_web.presets import PRESETS, find_preset


class SamplingOverrides(BaseModel):
    """Sampling values a request sets itself (each overrides the preset's)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    do_sample: bool | None = Field(None, description="False: greedy decoding.")
    seed: int | None = None


def sampling_for(
    preset_id: str | None, overrides: SamplingOverrides | None, *, param: str = "preset"
) -> SamplingParams:
    """The preset's values (Sakura's recommended ones for None) with ``overrides`` on top; 400 for an unknown
    preset. ``max_tokens`` stays the default: callers read it from ``overrides`` themselves."""
    preset = find_preset(preset_id)
    if preset is None:
        known = ", ".join(p.id for p in PRESETS)
        raise unknown_preset(f"unknown preset {preset_id!r}; the presets are {known}", param)
    values = preset.sampling.model_dump()
    if overrides is not None:
        values.update(overrides.model_dump(exclude_none=True, exclude={"max_tokens"}))
    return SamplingParams(**values)


def unknown_preset(message: str, param: str) -> APIError:
    """400 naming the preset field."""
    return invalid_request(message, param=param, code="unknown_preset")
