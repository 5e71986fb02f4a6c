"""The page at ``/`` and its static files, with a Content-Security-Policy that forbids inline script and anything
fetched from outside the server."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from sakura_core.server.routes.spec import RouteSpec

STATIC_DIR = Path(__file__).parent / "static"
#: Where the page's scripts, styles and images are served.
STATIC_PREFIX = "/web/"
#: Everything from this server only; no inline script or style, no plugins, no framing by other sites.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def index(request: web.Request) -> web.FileResponse:
    """The workbench page."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


PAGE_ROUTES = [
    RouteSpec(
        "GET", "/", index, "The translation workbench page (HTML).", media_type="text/html", public=True, tags=("web",)
    ),
]
