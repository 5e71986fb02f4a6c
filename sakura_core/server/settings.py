"""What ``sakura run`` tells the server: where to listen, who may call, limits."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServerSettings(BaseModel):
    """Server options common to every engine."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: HTTP Basic credentials (``--auth USER:PASS``); None when Basic auth is off.
    basic_auth: tuple[str, str] | None = None
    #: Bearer key (``--api-key``); also accepted as the Basic password.
    api_key: str | None = None
    #: True when the user said ``--no-auth`` or ``--auth :``: never generate a key.
    auth_disabled: bool = False
    #: Served model id instead of the file base name (``--alias``).
    alias: str | None = None
    #: Requests waiting for a free engine slot before new ones get 503.
    max_queue: int = Field(1024, ge=0)
    #: Largest accepted request body, in bytes (413 above it; a smaller bound follows from the model's context).
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    #: Largest header block of one request, in bytes (request line and every header; 431 past it).
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    #: Seconds a connection may take to send a request's headers, counted from its first byte (or from the
    #: connection's start); past it the connection is closed (with a 408 when part of a request came).
    header_timeout_seconds: float = Field(10.0, gt=0)
    #: Longest wait, in seconds, between two reads of a request body (408 past it), as nginx counts it.
    body_timeout_seconds: float = Field(30.0, gt=0)
    #: Longest time, in seconds, a whole request body may take to arrive (408 past it), however steadily it comes.
    body_deadline_seconds: float = Field(120.0, gt=0)
    #: Seconds an idle keep-alive connection stays open between requests. A streaming answer is not idle.
    keepalive_timeout_seconds: float = Field(30.0, gt=0)
    #: Seconds a write to a client may wait for the client to read (its buffers full); past it a stream is
    #: ended, its generation cancelled and the connection dropped.
    send_timeout_seconds: float = Field(60.0, gt=0)
    #: Open client connections past which new ones are refused at once (lowered to what the open-file limit
    #: allows).
    max_connections: int = Field(1024, ge=1)
    #: Open connections one client address may hold (at most the connection cap); past them its new ones are
    #: refused at once, so one address cannot hold the whole cap.
    max_connections_per_client: int = Field(256, ge=1)
    #: Origins allowed with credentials (``--cors-origins``). Empty: any origin, never with credentials.
    cors_origins: tuple[str, ...] = ()
    #: Seconds in-flight requests may keep running after SIGINT/SIGTERM before they are cancelled.
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    #: Seconds a running generation may go without progress before the engine counts as wedged (``/health`` 503
    #: with the reason, new requests refused); 0 turns the watchdog off.
    stall_timeout_seconds: float = Field(300.0, ge=0)
    #: Seconds of silence after which a waiting SSE stream gets a ``: ping`` comment (queue, prefill, slow tokens).
    sse_ping_seconds: float = Field(10.0, gt=0)
    #: Run the やる気マンゴスキン self-check after loading.
    self_check: bool = True
    log_level: str = "info"
    #: True when several models are served (``--model`` repeated): the load and unload routes are added.
    several_models: bool = False
    #: Models loaded at once when several are served (``--models-max``); past it the least recently used idle
    #: one is unloaded. 0: no bound.
    models_max: int = Field(0, ge=0)
    #: Seconds a model (other than the default) may stay idle before it is unloaded (``--models-ttl``); 0: never.
    models_ttl_seconds: float = Field(0.0, ge=0)
    #: Longest a request waits for its model to load before a 503 ``model_loading``.
    model_load_wait_seconds: float = Field(600.0, gt=0)
