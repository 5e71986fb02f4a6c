"""Who may call: no auth on loopback by default, HTTP Basic (``--auth``), a Bearer key (``--api-key``), or a
generated key when binding a public address with no auth option. Comparisons take constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sakura_core.server.settings import ServerSettings

REALM = "sakura"


class AuthMode(StrEnum):
    """How requests are checked."""

    NONE = "none"
    BASIC = "basic"
    KEY = "key"
    BASIC_OR_KEY = "basic or key"


@dataclass(frozen=True)
class AuthPolicy:
    """The credentials a request must carry (none when ``mode`` is NONE)."""

    mode: AuthMode
    basic: tuple[str, str] | None = None
    api_key: str | None = None
    #: True when the key was generated at start (it is shown once in the banner).
    generated: bool = False

    @property
    def required(self) -> bool:
        """True when requests must authenticate."""
        return self.mode is not AuthMode.NONE

    def describe(self) -> str:
        """One line for the banner."""
        if self.mode is AuthMode.NONE:
            return "none (any Authorization header is ignored)"
        parts = []
        if self.basic is not None:
            parts.append(f"HTTP Basic, user {self.basic[0]!r}")
        if self.api_key is not None:
            if self.generated:
                parts.append(f"generated API key (shown once): {self.api_key}")
            else:
                parts.append("API key (Authorization: Bearer KEY)")
        return "; ".join(parts)

    def challenges(self) -> list[str]:
        """``WWW-Authenticate`` values for a 401."""
        values = []
        if self.basic is not None or self.api_key is not None:
            values.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if self.api_key is not None:
            values.append(f'Bearer realm="{REALM}"')
        return values

    def allows(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header value satisfies the policy."""
        if self.mode is AuthMode.NONE:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer":
            return self.api_key is not None and _same(credentials, self.api_key)
        if scheme == "basic":
            decoded = _decode_basic(credentials)
            if decoded is None:
                return False
            user, password = decoded
            accepted = False
            if self.basic is not None:
                accepted |= _same(user, self.basic[0]) & _same(password, self.basic[1])
            if self.api_key is not None:
                accepted |= _same(password, self.api_key)
            return accepted
        return False


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_auth(settings: ServerSettings) -> AuthPolicy:
    """The policy ``settings`` ask for; a public address with no auth option gets a generated key."""
    if settings.auth_disabled:
        return AuthPolicy(AuthMode.NONE)
    if settings.basic_auth is not None and settings.api_key:
        return AuthPolicy(AuthMode.BASIC_OR_KEY, basic=settings.basic_auth, api_key=settings.api_key)
    if settings.basic_auth is not None:
        return AuthPolicy(AuthMode.BASIC, basic=settings.basic_auth)
    if settings.api_key:
        return AuthPolicy(AuthMode.KEY, api_key=settings.api_key)
    if is_loopback(settings.host):
        return AuthPolicy(AuthMode.NONE)
    return AuthPolicy(AuthMode.KEY, api_key=secrets.token_urlsafe(24), generated=True)


def _same(given: str, expected: str) -> bool:
    """Constant-time equality. ``given`` is the client's text: header bytes that are not UTF-8 reach it as lone
    surrogates (aiohttp decodes with ``surrogateescape``), which encode back to those bytes and never match."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _decode_basic(credentials: str) -> tuple[str, str] | None:
    try:
        text = base64.b64decode(credentials.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None
