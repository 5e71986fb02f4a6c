"""Unloading models left idle (``--models-ttl``) while the server runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from sakura_core.server.generation.state import Phase, ServerState
from sakura_core.server.keys import STATE

#: Longest pause, in seconds, between two looks for idle models.
IDLE_CHECK_SECONDS = 1.0


async def unload_idle_models(state: ServerState) -> None:
    """Every little while, unload the models idle for ``--models-ttl`` seconds (never the default model)."""
    ttl = state.settings.models_ttl_seconds
    while True:
        await asyncio.sleep(min(IDLE_CHECK_SECONDS, ttl / 4))
        if state.phase is Phase.READY:
            await state.models.unload_idle(ttl)


async def idle_models_watch(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: unload idle models for as long as the application runs (when ``--models-ttl`` is set)."""
    state = app[STATE]
    task = None
    if state.settings.models_ttl_seconds > 0:
        task = asyncio.get_running_loop().create_task(unload_idle_models(state))
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
