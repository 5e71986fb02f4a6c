"""The Sakura API server (aiohttp): OpenAI-compatible, llama-server-compatible and original Sakura routes.

Three layers, each a folder, each importing only the ones below it:

- ``routes/``: what each route reads and answers (the schemas, one shared handler for the generation routes,
  the OpenAPI document);
- ``generation/``: from a validated request to the engine's deltas (admission, metrics, the server's state);
- ``http/``: what every HTTP server needs (connections and timeouts, bodies, JSON, server-sent events, CORS,
  auth, errors).

``app.create_app`` builds the application for an engine that is already loaded (tests, benchmarks, embedding);
``runner.serve`` is what ``sakura run`` calls. Both are importable from here; aiohttp is imported only when one
of them is, so importing ``sakura_core.server.settings`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sakura_core.server.app import create_app
    from sakura_core.server.runner import serve

__all__ = ["create_app", "serve"]

_HOMES = {"create_app": "sakura_core.server.app", "serve": "sakura_core.server.runner"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
