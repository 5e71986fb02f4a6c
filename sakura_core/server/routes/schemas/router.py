"""Bodies of the routes that load and unload served models (llama-server's router names)."""

from __future__ import annotations

from pydantic import Field

from sakura_core.server.routes.schemas.common import RequestModel, ResponseModel


class ModelActionRequest(RequestModel):
    """``POST /models/load`` and ``POST /models/unload``: which model."""

    model: str = Field(min_length=1, description="A served model's id or alias.")


class ModelActionResponse(ResponseModel):
    """The model is loaded (``/models/load``) or unloaded (``/models/unload``)."""

    success: bool = True
