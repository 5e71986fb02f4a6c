"""CORS for browser clients (books.fishhawk.top runs in the browser): any origin, preflight without auth, and
Private Network Access for a page on the internet calling a server on localhost.

Credentials (cookies, HTTP auth a browser cached) are allowed only for the origins the user listed with
``--cors-origins``: an ``Authorization`` header a page sets itself needs no credentials mode, while allowing
credentials to any origin would let every web page use Basic auth the browser remembers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
DEFAULT_ALLOWED_HEADERS = "authorization, content-type, ngrok-skip-browser-warning"
PREFLIGHT_MAX_AGE = "86400"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"


def response_headers(request_headers: Mapping[str, str], origins: Collection[str] = ()) -> dict[str, str]:
    """Headers every response carries.

    With no ``origins`` configured, any caller's origin is allowed (``*`` when none is sent), without
    credentials. With ``origins``, only those are allowed, with credentials; other origins get no CORS headers.
    """
    origin = request_headers.get("Origin")
    if not origins:
        if not origin:
            return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
            "Vary": "Origin",
        }
    if not origin or origin not in origins:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(request_headers: Mapping[str, str], origins: Collection[str] = ()) -> dict[str, str]:
    """The answer to an ``OPTIONS`` preflight: methods, the requested headers, private-network access."""
    headers = response_headers(request_headers, origins)
    headers["Allow"] = ALLOWED_METHODS
    if "Access-Control-Allow-Origin" not in headers:
        return headers
    headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    headers["Access-Control-Allow-Headers"] = (
        request_headers.get("Access-Control-Request-Headers") or DEFAULT_ALLOWED_HEADERS
    )
    headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    if request_headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return headers
