"""The entry point of sakura-web: the workbench's ``sakura run`` options, its page and its jobs API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sakura_core import hookimpl

if TYPE_CHECKING:  # every sakura command loads this module: `sakura --help` must not import pydantic or aiohttp
    from pydantic import BaseModel

    from sakura_core.server.extension import ServerExtension

HEADING = "Translation workbench (sakura-web)"


@hookimpl
def register_run_options(register: Callable[[type[BaseModel], str], None]) -> None:
    """Add ``--web/--no-web``, ``--jobs-dir`` and the jobs' limits to ``sakura run``."""
    from sakura_web.options import WebOptions

    register(WebOptions, HEADING)


@hookimpl
def register_server_extensions(
    register: Callable[[ServerExtension], None], run_options: Mapping[type[BaseModel], BaseModel]
) -> None:
    """Serve the workbench at ``/`` with its static files, ``/translate`` and the jobs API (unless ``--no-web``)."""
    from sakura_web.options import WebOptions

    options = run_options.get(WebOptions) or WebOptions()
    if not isinstance(options, WebOptions) or not options.web:
        return
    from sakura_core.server.extension import ServerExtension, StaticFiles
    from sakura_web.jobs.routes import job_routes
    from sakura_web.jobs.runner import Jobs
    from sakura_web.page import PAGE_HEADERS, PAGE_ROUTES, STATIC_DIR, STATIC_PREFIX
    from sakura_web.translate_routes import TRANSLATE_ROUTES

    jobs = Jobs()
    register(
        ServerExtension(
            name="sakura-web",
            routes=[*PAGE_ROUTES, *TRANSLATE_ROUTES, *job_routes(jobs)],
            lifespans=[jobs.lifespan],
            static=[StaticFiles(STATIC_PREFIX, STATIC_DIR, PAGE_HEADERS)],
            home="/",
        )
    )
