"""What a plugin adds to the server (``register_server_extensions``): routes, static files, background work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from sakura_core.server.routes.spec import RouteSpec

#: An aiohttp cleanup context: what runs before its ``yield`` runs at start-up, what follows it at shutdown.
Lifespan = Callable[[web.Application], AsyncIterator[None]]


@dataclass(frozen=True)
class StaticFiles:
    """A folder served under a URL prefix, without credentials (a page's HTML, scripts, styles, images).

    Only GET and HEAD; names never leave ``directory`` (aiohttp refuses ``..`` and links out of it). ``headers``
    are set on every answer under the prefix (a Content-Security-Policy, a cache policy).
    """

    prefix: str
    directory: Path
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerExtension:
    """One plugin's additions to the server.

    ``routes`` join the route table: the OpenAPI document describes them, the auth policy covers them unless a
    spec says ``public=True``, and a route whose method and path the server already answers is an error at
    start-up. ``lifespans`` start with the server (before it takes requests) and end with it (after in-flight
    requests drained). ``home`` is a page for people, printed in the start-up banner.
    """

    name: str
    routes: Sequence[RouteSpec] = ()
    static: Sequence[StaticFiles] = ()
    lifespans: Sequence[Lifespan] = ()
    home: str | None = None


class ExtensionConflictError(ValueError):
    """Two routes (the server's or a plugin's) claim the same method and path, or two plugins the same prefix."""


def check_no_conflicts(core: Sequence[RouteSpec], extensions: Sequence[ServerExtension]) -> None:
    """Raise ExtensionConflictError naming the plugin when an extension's route or static prefix is taken."""
    taken = {(spec.method, spec.path): "the server" for spec in core}
    prefixes: dict[str, str] = {}
    for extension in extensions:
        for spec in extension.routes:
            owner = taken.setdefault((spec.method, spec.path), extension.name)
            if owner != extension.name:
                raise ExtensionConflictError(
                    f"plugin {extension.name!r} adds {spec.method} {spec.path}, which {owner} already answers"
                )
        for static in extension.static:
            owner = prefixes.setdefault(static.prefix.rstrip("/"), extension.name)
            if owner != extension.name:
                raise ExtensionConflictError(f"plugins {owner!r} and {extension.name!r} both serve {static.prefix}")
