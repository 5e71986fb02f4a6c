"""Bodies of the original Sakura server's own routes: model info, core version, legacy generate."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sakura_core.server.routes.schemas.common import RequestModel, ResponseModel


class ModelInfoResponse(ResponseModel):
    """``GET /v1/chat/model_info``."""

    model_name: str
    model_version: str | None
    model_quant: str | None
    model_name_or_path: str


class CoreVersionResponse(ResponseModel):
    """``GET /api/core/version``."""

    name: str
    version: str | None
    quant: str | None


class LegacyGenerateRequest(RequestModel):
    """``POST /api/v1/generate`` and ``/api/v1/stream/generate``: a raw prompt and Transformers-style sampling.

    The many other fields old clients send (typical_p, mirostat_mode, ...) are accepted and ignored.
    """

    prompt: str
    max_new_tokens: int | None = Field(None, ge=1, description="Default 512; lowered to what the context leaves.")
    do_sample: bool | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    num_beams: int | None = Field(None, ge=1, description="Accepted for compatibility; decoding is not beam search.")
    seed: int | None = None

    def sampling_values(self) -> dict[str, Any]:
        """The fields given, under sakura_core.types.SamplingParams names (max_tokens is the route's job)."""
        values: dict[str, Any] = {}
        for name in ("temperature", "top_k", "repetition_penalty", "frequency_penalty", "seed"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        greedy = self.do_sample is False or self.top_p == 0.0
        if self.top_p is not None and self.top_p > 0.0:
            values["top_p"] = self.top_p
        if greedy:
            values["do_sample"] = False
        elif self.do_sample is not None:
            values["do_sample"] = True
        return values


class LegacyResult(ResponseModel):
    """Generated text and how many tokens it is (in a stream: the new piece and its tokens)."""

    text: str
    new_token: int = Field(ge=0)


class LegacyGenerateResponse(ResponseModel):
    """The answer of ``POST /api/v1/generate``, and each event of ``/api/v1/stream/generate``."""

    results: list[LegacyResult]
