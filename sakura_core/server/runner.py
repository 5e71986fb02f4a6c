"""Running the server: bind, load the model, self-check, banner, serve until a signal, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from sakura_core.engine import Engine
from sakura_core.loaded_model import LoadedModel
from sakura_core.model_specs import ModelSpec, served_name
from sakura_core.plugins import PluginRegistry
from sakura_core.self_check import self_check
from sakura_core.server.app import build_app
from sakura_core.server.banner import banner, url_host
from sakura_core.server.generation.models import Loader
from sakura_core.server.generation.state import ServerState
from sakura_core.server.http.connections import GuardedSite, raise_open_file_limit
from sakura_core.server.keys import HOMES
from sakura_core.server.settings import ServerSettings

logger = logging.getLogger(__name__)

#: Seconds aiohttp may take to close connections once in-flight work is finished or cancelled.
CONNECTION_CLOSE_SECONDS = 2.0
#: Seconds to wait for cancelled generations to unwind.
CANCEL_SETTLE_SECONDS = 2.0
#: Seconds of loading after which the log says what is loading (a model that fails at once prints only its error).
LOADING_NOTICE_SECONDS = 1.0
#: How the server's AppRunner is made: a client that disconnects cancels its handler; the access log is the
#: server's own middleware.
RUNNER_OPTIONS: dict[str, Any] = {
    "handler_cancellation": True,
    "access_log": None,
    "shutdown_timeout": CONNECTION_CLOSE_SECONDS,
}


async def serve(
    settings: ServerSettings,
    engine: Engine,
    registry: PluginRegistry,
    model: str,
    model_version: str | None,
    others: Sequence[ModelSpec] = (),
    make_engine: Callable[[str | None], Engine] | None = None,
    first_aliases: Sequence[str] = (),
    run_options: Mapping[type[BaseModel], BaseModel] | None = None,
) -> None:
    """Serve the Sakura API until SIGINT/SIGTERM (``others``: models served beside ``model``, see ``run_server``;
    ``run_options``: plugins' ``sakura run`` options, for their server extensions).

    Binds first (``/health`` answers 503 while loading), loads the model, applies ``--alias``, runs the
    self-check, logs the banner and serves. On the first signal it stops accepting, lets in-flight requests
    finish for ``settings.shutdown_grace_seconds``, ends the rest (a second signal ends them at once) and
    closes the engine. A ModelLoadError from ``engine.load`` propagates, after the socket is closed. The soft
    open-file limit is raised to the hard one first, so that ``--max-connections`` fits under it.
    """
    raise_open_file_limit()
    stop = asyncio.Event()
    force = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            force.set()
        stop.set()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    try:
        await run_server(
            settings,
            engine,
            registry,
            model,
            model_version,
            stop,
            force=force,
            others=others,
            make_engine=make_engine,
            first_aliases=first_aliases,
            run_options=run_options,
        )
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def run_server(
    settings: ServerSettings,
    engine: Engine,
    registry: PluginRegistry,
    model: str,
    model_version: str | None,
    stop: asyncio.Event,
    *,
    force: asyncio.Event | None = None,
    on_bound: Callable[[str, int], None] | None = None,
    others: Sequence[ModelSpec] = (),
    make_engine: Callable[[str | None], Engine] | None = None,
    first_aliases: Sequence[str] = (),
    run_options: Mapping[type[BaseModel], BaseModel] | None = None,
) -> None:
    """``serve`` without the signal handlers: serves until ``stop`` is set (``force`` skips the grace period).

    ``on_bound(host, port)`` is called once the socket listens (port 0 binds a free port). ``others`` are served
    beside ``model``, each loaded by an engine from ``make_engine`` on the first request that names it; ``model``
    (also named ``first_aliases``) is the default, loaded at start.
    """
    state = ServerState(settings, engine, registry, run_options=run_options)
    app = build_app(state)
    runner = web.AppRunner(app, **RUNNER_OPTIONS)
    await runner.setup()
    load_started = False
    try:
        site = GuardedSite(runner, settings)
        await site.start()
        host, port = settings.host, site.port
        if on_bound is not None:
            on_bound(host, port)
        logger.debug("listening on http://%s:%d (/health answers 503 until the model is loaded)", url_host(host), port)
        load_started = True
        notice = asyncio.get_running_loop().call_later(
            LOADING_NOTICE_SECONDS, logger.info, "loading %s with the %s engine", model, engine.name
        )
        try:
            loaded = await _load_unless_stopped(engine, registry, model, model_version, stop)
        finally:
            notice.cancel()
        if loaded is None:
            logger.info("stopped while loading the model")
            return
        if settings.alias:
            loaded.with_id(settings.alias)
        if settings.self_check:
            await _self_check(loaded)
        state.set_ready(loaded, aliases=first_aliases)
        for spec in others:
            if make_engine is None:
                raise ValueError("serving several models needs make_engine")
            state.register(
                served_name(spec.source),
                spec.source,
                (spec.alias,) if spec.alias else (),
                _loader(spec, make_engine, registry),
            )
        info = loaded.info
        homes: tuple[str, ...] = app[HOMES]
        logger.info("%s", banner(engine, info, host, port, state.auth, pages=homes))
        if state.auth.generated and not logger.isEnabledFor(logging.INFO):  # the key must be seen once
            logger.warning("requests need the generated API key: Authorization: Bearer %s", state.auth.api_key)
        await stop.wait()
        await site.stop()
        await _drain(state, settings.shutdown_grace_seconds, force)
    finally:
        await runner.cleanup()
        if load_started:
            await _close_engine(state)


async def _load_unless_stopped(
    engine: Engine, registry: PluginRegistry, model: str, model_version: str | None, stop: asyncio.Event
) -> LoadedModel | None:
    load = asyncio.ensure_future(LoadedModel.load(engine, registry, model, model_version))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({load, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not load.done():
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await load
    if load.cancelled():
        return None
    return load.result()  # a ModelLoadError propagates from here


def _loader(spec: ModelSpec, make_engine: Callable[[str | None], Engine], registry: PluginRegistry) -> Loader:
    """Loads ``spec`` with a new engine, its own (``ENGINE:``) or the default one (``--model-version`` applies to
    the default model only)."""

    async def load() -> LoadedModel:
        return await LoadedModel.load(make_engine(spec.engine), registry, spec.source)

    return load


async def _self_check(model: LoadedModel) -> None:
    try:
        await self_check(model)
    except Exception as exc:
        logger.warning("self-check could not run: %s; serving anyway", exc)


async def _drain(state: ServerState, grace: float, force: asyncio.Event | None) -> None:
    """Stop taking generations, let running ones finish for ``grace`` seconds (or until ``force``), cancel the rest."""
    state.begin_stopping()
    schedulers = [entry.scheduler for entry in state.models if entry.scheduler is not None]
    if not schedulers:
        return
    pending = sum(scheduler.active + scheduler.waiting for scheduler in schedulers)
    if pending:
        logger.info(
            "shutting down: waiting up to %.0fs for %d requests in flight (signal again to cancel)", grace, pending
        )
    else:
        logger.info("shutting down")
    idle = asyncio.ensure_future(asyncio.gather(*(scheduler.wait_idle(grace) for scheduler in schedulers)))
    waiters: set[asyncio.Future[Any]] = {idle}
    if force is not None:
        waiters.add(asyncio.ensure_future(force.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    if sum(scheduler.active + scheduler.waiting for scheduler in schedulers):
        ended = sum(scheduler.cancel_all() for scheduler in schedulers)
        logger.warning(
            "ending %d requests still in flight: streams end with a shutting_down error event, others get a 503",
            ended,
        )
        await asyncio.gather(*(scheduler.wait_idle(CANCEL_SETTLE_SECONDS) for scheduler in schedulers))


async def _close_engine(state: ServerState) -> None:
    """Close the engine: through its loaded model when it loaded (streams still closing finish first)."""
    try:
        if state.model is not None:
            await state.models.close()
        else:
            await state.engine.close()
    except Exception:
        logger.warning("the engine failed to close cleanly", exc_info=True)
    else:
        logger.log(logging.INFO if state.service is not None else logging.DEBUG, "engine closed")
