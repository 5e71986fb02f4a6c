"""Auth per the contract (none on loopback, Basic, Bearer key, generated key) and CORS for browser clients."""

from __future__ import annotations

import base64
import socket
import time

import click
import openai
import pytest

from sakura_core.cli import parse_cors_origins
from sakura_core.server.http.auth import AuthMode, is_loopback, resolve_auth
from sakura_core.server.settings import ServerSettings

CHAT = {"messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 2}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("header", ["Bearer no-key", "Bearer sk-114514", "Bearer nokey", "Bearer ", "Basic !!!"])
async def test_no_auth_by_default_ignores_any_authorization_header(api, header: str) -> None:
    reply = await api.post("/v1/chat/completions", CHAT, headers={"Authorization": header})
    assert reply.status == 200


async def test_api_key_as_bearer_and_as_basic_password(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="s3cret"))
    api = server.api
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret2"}):
        reply = await api.post("/v1/chat/completions", CHAT, headers=headers)
        assert reply.status == 401
        assert reply.error["code"] == "invalid_api_key"
        assert any(v.startswith("Bearer") for v in reply.headers.getall("WWW-Authenticate"))
    assert (await api.post("/v1/chat/completions", CHAT, headers={"Authorization": "Bearer s3cret"})).status == 200
    assert (await api.post("/v1/chat/completions", CHAT, headers={"Authorization": "bearer s3cret"})).status == 200
    assert (await api.get("/v1/models", headers={"Authorization": basic("anyone", "s3cret")})).status == 200
    assert (await api.get("/metrics")).status == 401
    # the openai client sends the key as a Bearer token
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="s3cret", max_retries=0)
    completion = await client.chat.completions.create(model="x", messages=CHAT["messages"], max_tokens=2)
    assert completion.usage.completion_tokens == 2
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="nope", max_retries=0).models.list()
    await client.close()


async def test_basic_auth(start_server) -> None:
    server = await start_server(settings=ServerSettings(basic_auth=("sakura", "pa:ss")))
    api = server.api
    reply = await api.get("/v1/models")
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert (await api.get("/v1/models", headers={"Authorization": basic("sakura", "wrong")})).status == 401
    assert (await api.get("/v1/models", headers={"Authorization": basic("other", "pa:ss")})).status == 401
    assert (await api.get("/v1/models", headers={"Authorization": basic("sakura", "pa:ss")})).status == 200
    assert (await api.get("/v1/models", headers={"Authorization": "Bearer pa:ss"})).status == 401


async def test_public_routes_need_no_credentials(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="k"))
    assert (await server.api.get("/health")).status == 200
    assert (await server.api.get("/slots")).status == 200  # AiNiee and LinguaGacha send no auth header here
    assert (await server.api.get("/openapi.json")).status == 200
    preflight = await server.api.request(
        "OPTIONS", "/v1/chat/completions", headers={"Origin": "https://books.fishhawk.top"}
    )
    assert preflight.status == 204


def test_auth_resolution() -> None:
    assert resolve_auth(ServerSettings()).mode is AuthMode.NONE
    assert resolve_auth(ServerSettings(host="localhost")).mode is AuthMode.NONE
    assert resolve_auth(ServerSettings(host="::1")).mode is AuthMode.NONE
    public = resolve_auth(ServerSettings(host="0.0.0.0"))
    assert public.mode is AuthMode.KEY and public.generated and len(public.api_key or "") >= 24
    assert public.api_key in public.describe()
    assert resolve_auth(ServerSettings(host="0.0.0.0")).api_key != public.api_key
    assert resolve_auth(ServerSettings(host="0.0.0.0", auth_disabled=True)).mode is AuthMode.NONE
    keyed = resolve_auth(ServerSettings(host="0.0.0.0", api_key="k"))
    assert keyed.mode is AuthMode.KEY and not keyed.generated and "k" not in keyed.describe().split()
    both = resolve_auth(ServerSettings(basic_auth=("u", "p"), api_key="k"))
    assert both.mode is AuthMode.BASIC_OR_KEY
    assert both.allows(basic("u", "p")) and both.allows("Bearer k") and both.allows(basic("x", "k"))
    assert not both.allows(basic("u", "k2")) and not both.allows(None) and not both.allows("Digest abc")
    assert is_loopback("127.0.0.2") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


async def test_generated_key_is_required_on_a_public_address(start_server) -> None:
    # the key a public bind generates is enforced like --api-key (the socket here is still loopback)
    settings = ServerSettings(host="0.0.0.0")
    server = await start_server(settings=settings)
    policy = server.state.auth
    assert policy.generated
    assert (await server.api.get("/v1/models")).status == 401
    reply = await server.api.get("/v1/models", headers={"Authorization": f"Bearer {policy.api_key}"})
    assert reply.status == 200


async def test_cors_preflight_with_private_network_access(api) -> None:
    reply = await api.request(
        "OPTIONS",
        "/v1/chat/completions",
        headers={
            "Origin": "https://books.fishhawk.top",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, ngrok-skip-browser-warning",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert reply.status == 204
    headers = reply.headers
    assert headers["Access-Control-Allow-Origin"] == "https://books.fishhawk.top"
    assert "POST" in headers["Access-Control-Allow-Methods"] and "OPTIONS" in headers["Access-Control-Allow-Methods"]
    allowed = headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed and "ngrok-skip-browser-warning" in allowed
    assert headers["Access-Control-Allow-Private-Network"] == "true"


async def test_preflight_on_any_path_and_without_requested_headers(api) -> None:
    reply = await api.request("OPTIONS", "/completion", headers={"Origin": "http://localhost:5173"})
    assert reply.status == 204
    assert "authorization" in reply.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Private-Network" not in reply.headers


async def test_cors_headers_on_answers_streams_and_errors(api) -> None:
    origin = {"Origin": "https://example.org"}
    for reply in (
        await api.get("/v1/models", headers=origin),
        await api.post("/v1/chat/completions", {**CHAT, "stream": True}, headers=origin),
        await api.post("/v1/chat/completions", {"messages": []}, headers=origin),
        await api.get("/nowhere", headers=origin),
    ):
        assert reply.headers["Access-Control-Allow-Origin"] == "https://example.org"
    reply = await api.get("/health")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


async def test_unauthorized_answers_carry_cors_headers(start_server) -> None:
    server = await start_server(settings=ServerSettings(api_key="k"))
    reply = await server.api.get("/v1/models", headers={"Origin": "https://books.fishhawk.top"})
    assert reply.status == 401
    assert reply.headers["Access-Control-Allow-Origin"] == "https://books.fishhawk.top"


async def test_cors_never_allows_credentials_without_configured_origins(api) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    for reply in (
        await api.get("/v1/models", headers=origin),
        await api.post("/v1/chat/completions", {**CHAT, "stream": True}, headers=origin),
        await api.request("OPTIONS", "/v1/chat/completions", headers=preflight),
    ):
        assert reply.headers["Access-Control-Allow-Origin"] == "https://evil.example"
        assert "Access-Control-Allow-Credentials" not in reply.headers


async def test_configured_origins_are_allowed_with_credentials_and_others_are_not(start_server) -> None:
    allowed = "https://books.fishhawk.top"
    server = await start_server(settings=ServerSettings(cors_origins=(allowed, "http://localhost:5173")))
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    reply = await server.api.get("/v1/models", headers={"Origin": allowed})
    assert reply.headers["Access-Control-Allow-Origin"] == allowed
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    reply = await server.api.request("OPTIONS", "/v1/chat/completions", headers={"Origin": allowed, **preflight})
    assert reply.status == 204 and reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert reply.headers["Access-Control-Allow-Headers"] == "authorization"
    for headers in ({"Origin": "https://evil.example"}, {}):
        reply = await server.api.get("/v1/models", headers=headers)
        assert reply.status == 200
        assert "Access-Control-Allow-Origin" not in reply.headers
        assert "Access-Control-Allow-Credentials" not in reply.headers
    reply = await server.api.request(
        "OPTIONS", "/v1/chat/completions", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "Access-Control-Allow-Origin" not in reply.headers and "Access-Control-Allow-Methods" not in reply.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://books.fishhawk.top", ("https://books.fishhawk.top",)),
        ("https://a.example/, http://localhost:5173", ("https://a.example", "http://localhost:5173")),
    ],
)
def test_parse_cors_origins(value: str, expected: tuple[str, ...]) -> None:
    assert parse_cors_origins(value) == expected


@pytest.mark.parametrize("value", ["*", "books.fishhawk.top", "https://a.example/path", "ftp://a.example", " , "])
def test_parse_cors_origins_rejects(value: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_cors_origins(value)


def test_the_run_options_reach_the_server(run_sakura, raw_exchange, parse_raw_reply) -> None:
    """--cors-origins, --max-body-size, --header-timeout, --keepalive-timeout and --max-connections, through
    ``sakura run``."""
    process = run_sakura(
        "--cors-origins",
        "https://books.fishhawk.top",
        "--max-body-size",
        "2048",
        "--header-timeout",
        "0.5",
        "--keepalive-timeout",
        "0.5",
        "--max-connections",
        "5",
    )
    host = f"Host: 127.0.0.1:{process.port}\r\n"
    reply = parse_raw_reply(
        raw_exchange(
            process.port, f"GET /v1/models HTTP/1.1\r\n{host}Origin: https://books.fishhawk.top\r\n\r\n".encode()
        )
    )
    assert reply.headers["access-control-allow-credentials"] == "true"
    body = b'{"prompt": "' + b"x" * 3000 + b'"}'
    request = f"POST /v1/completions HTTP/1.1\r\n{host}Content-Length: {len(body)}\r\n\r\n".encode() + body
    reply = parse_raw_reply(raw_exchange(process.port, request))
    assert reply.status == 413 and "2048 bytes" in reply.json()["error"]["message"]
    started = time.monotonic()
    assert raw_exchange(process.port, b"", timeout=5) == b""  # a silent connection: closed at the header timeout
    assert time.monotonic() - started < 2.5
    held = [socket.create_connection(("127.0.0.1", process.port)) for _ in range(5)]
    try:
        time.sleep(0.2)
        assert b"too_many_connections" in raw_exchange(process.port, b"GET /health HTTP/1.1\r\n\r\n")
    finally:
        for sock in held:
            sock.close()
