"""Raw HTTP for tests and benchmarks that talk to a server as no HTTP library would: bytes sent as they are on a
fresh connection, the answer read until the server closes, parsed by hand; and a gzip bomb."""

from __future__ import annotations

import contextlib
import json
import socket
import zlib
from dataclasses import dataclass
from typing import Any

MiB = 1024 * 1024


def exchange(port: int, payload: bytes, timeout: float = 10, host: str = "127.0.0.1") -> bytes:
    """Send ``payload`` on a fresh connection (as much as the server takes) and read until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def dechunk(data: bytes) -> bytes:
    """The payload of a chunked body (complete or cut short)."""
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


@dataclass
class RawReply:
    """An HTTP/1.1 answer read off a socket: status, lower-cased headers, the body (de-chunked)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> RawReply:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            body = dechunk(body)
        return cls(int(lines[0].split()[1]), headers, body)

    def json(self) -> Any:
        return json.loads(self.body)


def post_request(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``POST`` request with a JSON body, asking the server to close the connection after it."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


def gzip_bomb(compressed_bytes: int) -> bytes:
    """A gzip member of zeros about ``compressed_bytes`` long that inflates about 1,000-fold.

    1 MiB of zeros compressed with a full flush after it (which resets the window) is the same block every time,
    so the bomb is built by repeating that block instead of compressing gigabytes.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(b"\0" * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(b"\0" * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * max(1, (compressed_bytes - len(head)) // len(block)) + compressor.flush()
