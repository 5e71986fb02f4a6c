"""The start-up banner: engine, model identity, address, auth, and the URL to paste into a translator."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

from sakura_core import __version__
from sakura_core.engine import Engine
from sakura_core.server.http.auth import AuthPolicy
from sakura_core.types import ModelInfo

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def lan_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.254.254.254", 1))
        address: str = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def client_urls(host: str, port: int) -> list[str]:
    """Base URLs a client can use: the bound address, or for a wildcard bind this machine and its LAN address."""
    if host in WILDCARD_HOSTS:
        urls = [f"http://127.0.0.1:{port}"]
        lan = lan_address()
        if lan is not None:
            urls.append(f"http://{lan}:{port}")
        return urls
    return [f"http://{url_host(host)}:{port}"]


def banner(engine: Engine, info: ModelInfo, host: str, port: int, auth: AuthPolicy, pages: Sequence[str] = ()) -> str:
    """The lines logged once the server is ready; ``pages`` are paths of pages for people that plugins serve."""
    urls = client_urls(host, port)
    identity = ", ".join(
        f"{key} {value}"
        for key, value in (("version", info.version), ("quant", info.quant), ("prompt format", info.prompt_format))
        if value
    )
    lines = [
        f"sakura {__version__} is serving {info.id}",
        f"  engine:  {engine.name} ({engine.parallelism} parallel sequences, {info.context_length} tokens each)",
        f"  model:   {info.name} ({identity}) from {info.path}",
        f"  listen:  http://{url_host(host)}:{port}",
        f"  auth:    {auth.describe()}",
        f"  paste into your translator: {urls[0]}" + (f"  (other machines: {urls[1]})" if len(urls) > 1 else ""),
        f"  OpenAI clients (base_url): {urls[0]}/v1",
        *(f"  open in a browser: {urls[0]}{page}" for page in pages),
    ]
    return "\n".join(lines)
