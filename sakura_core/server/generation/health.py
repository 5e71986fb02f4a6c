"""Watching the engine's health while the server runs: poll the engine's ``health()``, log each change once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sakura_core.server.generation.state import Phase, ServerState
from sakura_core.server.keys import STATE

logger = logging.getLogger(__name__)

#: Seconds between two health checks of an engine that implements ``health()``; also each check's time limit.
HEALTH_POLL_SECONDS = 1.0


async def watch_engine_health(state: ServerState, interval: float = HEALTH_POLL_SECONDS) -> None:
    """Poll the engine while the server is ready; ``/health`` and new requests answer 503 while it is down."""
    while True:
        if state.phase is Phase.READY and state.model is not None:
            runner = state.model.runner
            if not runner.reports_health:
                return
            before = runner.problem
            problem = await runner.check_health(within=interval)
            if problem is not None and before is None:
                logger.warning("the engine cannot serve: %s; /health answers 503 until it recovers", problem)
            elif problem is None and before is not None:
                logger.info("the engine serves again")
        await asyncio.sleep(interval)


async def engine_health_watch(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: watch the engine's health for as long as the application runs."""
    task = asyncio.get_running_loop().create_task(watch_engine_health(app[STATE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
