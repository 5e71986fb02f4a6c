"""CORS for browser clients (books.fishhawk.top runs in the browser): any origin, preflight without auth, and
Private Network Access for a page on the internet calling a server on localhost."""

from __future__ import annotations

from collections.abc import Mapping

ALLOWED_METHODS = "GET, POST, OPTIONS"
DEFAULT_ALLOWED_HEADERS = "authorization, content-type, ngrok-skip-browser-warning"
PREFLIGHT_MAX_AGE = "86400"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"


def response_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """Headers every response carries: the caller's origin is allowed (or any origin when none is sent)."""
    origin = request_headers.get("Origin")
    if not origin:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """The answer to an ``OPTIONS`` preflight: methods, the requested headers, private-network access."""
    headers = response_headers(request_headers)
    headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    headers["Access-Control-Allow-Headers"] = (
        request_headers.get("Access-Control-Request-Headers") or DEFAULT_ALLOWED_HEADERS
    )
    headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    if request_headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    headers["Allow"] = ALLOWED_METHODS
    return headers
