"""Watching the engine's health while the server runs: poll the engine's ``health()``, log each change once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sakura_core.server.generation.state import Phase, ServerState
from sakura_core.server.keys import STATE

logger = logging.getLogger(__name__)

#: Seconds between two health checks of an engine that implements ``health()``; also each check's time limit.
HEALTH_POLL_SECONDS = 1.0


async def watch_engine_health(state: ServerState, interval: float = HEALTH_POLL_SECONDS) -> None:
    """Poll the engine while the server is ready, and watch its generations' progress: ``/health`` and new requests
    answer 503 while it is down or a generation has made no progress for ``--stall-timeout`` seconds."""
    while True:
        if state.phase is Phase.READY and state.model is not None:
            runner = state.model.runner
            before = runner.problem
            if runner.reports_health:
                await runner.check_health(within=interval)
            stall = state.settings.stall_timeout_seconds
            if stall:
                runner.check_progress(stall)
            problem = runner.problem
            if problem is not None and before is None:
                logger.warning("the engine cannot serve: %s; /health answers 503 until it recovers", problem)
                if runner.stall_problem is not None:
                    await _restart_wedged(state, runner.stall_problem)
            elif problem is None and before is not None:
                logger.info("the engine serves again")
        await asyncio.sleep(interval)


async def _restart_wedged(state: ServerState, reason: str) -> None:
    """Ask the engine to recover from a wedge (an engine that spawned its backend restarts it); most cannot."""
    try:
        await state.engine.recover(reason)
    except Exception as exc:
        logger.warning("the engine could not recover: %s: %s", type(exc).__name__, exc)


async def engine_health_watch(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: watch the engine's health for as long as the application runs."""
    task = asyncio.get_running_loop().create_task(watch_engine_health(app[STATE]))
    yield
    task.cancel()
    # bounded: an engine call that ignores the cancellation must not hold up the shutdown
    await asyncio.wait({task}, timeout=HEALTH_POLL_SECONDS)
